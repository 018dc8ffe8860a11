"""`edgeship gc` deletes only its own: names the device prints are read NUL-delimited and each path is
checked on the host before it is removed, and a root without the store marker is refused."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.profile.session import ProfileSession, sanitize_serial
from edgeship.android_harness.push import push_bundle
from edgeship.android_harness.store import collect_garbage
from edgeship.android_harness.store.gc import parse_gc_survey
from edgeship.android_harness.store.layout import STORE_MARKER, is_run_id
from edgeship.errors import DeviceError
from edgeship.exporter.manifest import read_build
from tests.android_harness.synthetic import random_sections, write_build
from tests.cli import EdgeshipCli

HOUR_S = 3600


def _age_tree(path: Path, seconds: float) -> None:
    """Backdate a folder and everything in it (gc keeps what was written to in the last minutes)."""
    when = time.time() - seconds
    for item in [*path.rglob("*"), path]:
        os.utime(item, (when, when), follow_symlinks=False)


def _leftover(folder: Path, name: str, age_s: float = HOUR_S) -> Path:
    path = folder / name
    path.mkdir(parents=True)
    (path / "data").write_bytes(b"x" * 4096)
    _age_tree(path, age_s)
    return path


def _build(tmp_path: Path, name: str = "b") -> Path:
    return write_build(tmp_path / name, random_sections([3 * 16384 + 1], seed=len(name)))


@pytest.fixture
def edgeship(cli: EdgeshipCli, adb_server: Any) -> EdgeshipCli:
    """The CLI as a user runs it (tests/cli.py), on the test's adb server."""
    return cli.with_server(adb_server)


def test_a_leftover_named_like_a_survey_line_cannot_make_gc_remove_the_bundles(
    device: Device, vdevice: Any, tmp_path: Path
) -> None:
    """On main a staging folder named 'x\\n4\\tbundles' made `gc --keep 5` read a leftover "bundles" and
    remove every bundle."""
    pushed = push_bundle(device, _build(tmp_path))
    assert pushed.ok, pushed.error
    store = vdevice.sandbox_root / "edgeship"
    odd = _leftover(store / "staging", "x\n4\tbundles")
    result = collect_garbage(device, keep=5)
    assert result.ok, result.error
    assert (store / "bundles" / pushed.bundle_sha256 / "model.litertlm").is_file()
    assert result.removed_bundles == [] and result.kept == [pushed.bundle_sha256]
    # Not a name edgeship gives a staging folder: left alone, and said so.
    assert odd.exists() and result.foreign == ["staging/x\n4\tbundles"]


def test_gc_refuses_a_root_that_is_not_an_edgeship_store(
    edgeship: EdgeshipCli, vdevice: Any, tmp_path: Path
) -> None:
    """device_root /data/local/tmp: on main gc removed other tools' runs/ and staging/ there."""
    tmp = vdevice.sandbox_root  # /data/local/tmp
    theirs = [_leftover(tmp / "runs", "other-tool-run"), _leftover(tmp / "staging", "a" * 64)]
    shared_root = edgeship.with_config("device_root: /data/local/tmp\n")
    result = shared_root("gc", "--device", vdevice.serial, "--keep", "0")
    message = result.stderr.strip()
    assert result.returncode == DeviceError.exit_code, (result.stdout, message)
    assert message.count("\n") == 0 and STORE_MARKER in message and "/data/local/tmp" in message, message
    assert all(path.exists() for path in theirs)


def test_gc_in_a_shared_root_removes_only_what_edgeship_named(
    edgeship: EdgeshipCli, vdevice: Any, tmp_path: Path
) -> None:
    """With /data/local/tmp as the root of a real store (marker written by push), another tool's runs/
    entry stays; edgeship's own old run folder, staging and bundles beyond --keep go."""
    shared_root = edgeship.with_config("device_root: /data/local/tmp\n")
    builds = [_build(tmp_path, name) for name in ("old", "new")]
    for build in builds:
        pushed = shared_root("push", str(build), "--device", vdevice.serial)
        assert pushed.returncode == 0, pushed.stderr
    tmp = vdevice.sandbox_root
    assert (tmp / STORE_MARKER).is_file()
    run_id = f"{'c' * 12}-{ProfileSession.__dataclass_fields__['started'].default_factory()}-"  # type: ignore[misc]
    run_id += f"{sanitize_serial(vdevice.serial)}-iter-1"
    assert is_run_id(run_id)  # the shape profile/run.py gives a run folder
    ours = [_leftover(tmp / "runs", run_id), _leftover(tmp / "staging", "b" * 64)]
    theirs = [_leftover(tmp / "runs", "other-tool-run"), _leftover(tmp / "staging", "not-a-sha")]
    result = shared_root("gc", "--device", vdevice.serial, "--keep", "1", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    old, new = (read_build(build).sha256 for build in builds)
    assert row["kept"] == [new] and row["removed_bundles"] == [old]
    assert not any(path.exists() for path in ours)
    assert all(path.exists() for path in theirs)
    assert sorted(row["foreign"]) == ["runs/other-tool-run", "staging/not-a-sha"]
    assert (tmp / "bundles" / new / "model.litertlm").is_file() and not (tmp / "bundles" / old).exists()


def test_the_gc_survey_is_read_record_by_record() -> None:
    sha, other = "a" * 64, "b" * 64
    records = [
        "root",
        "store",
        f"bundle 1700000000 8 1700000000.500000 bundles/{sha}",
        f"bundle 1700000001 4 - bundles/{other}",
        "bundle 1700000002 4 - bundles/x\nbundle 1 1 - bundles/" + "c" * 64,  # one odd folder, one record
        f"leftover 12 staging/{other}",
        "leftover 4 staging/x\n4\tbundles",
        "in-use 0 runs/other",
        "leftover 4 ../../etc",
        f"leftover 4 bin/{sha}/probe.1a2b.part",
    ]
    survey = parse_gc_survey(("\0".join(records) + "\0").encode())
    assert survey.root_exists and survey.marked
    assert [sha for _, sha, _ in survey.bundles] == [other, sha]
    assert survey.leftovers == [(f"staging/{other}", 12 * 1024), (f"bin/{sha}/probe.1a2b.part", 4 * 1024)]
    assert survey.in_use == []
    assert survey.foreign == [
        "bundles/x\nbundle 1 1 - bundles/" + "c" * 64,
        "staging/x\n4\tbundles",
        "runs/other",
        "../../etc",
    ]
