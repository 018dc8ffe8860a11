"""Device profiles: built-ins, user folder, files, errors."""

from __future__ import annotations

import pytest

from edgeship.errors import InputError, UsageError
from edgeship.vdevice import list_profiles, load_profile


def test_builtin_profiles_have_the_required_props() -> None:
    names = {profile.name for profile in list_profiles()}
    assert {"vflagship", "vbudget4g"} <= names
    flagship = load_profile("vflagship")
    budget = load_profile("vbudget4g")
    assert budget.ram_bytes == 4 * 1024**3
    assert flagship.ram_bytes > budget.ram_bytes
    props = flagship.system_properties("SERIAL1")
    for key in (
        "ro.product.model", "ro.product.manufacturer", "ro.product.device", "ro.product.name",
        "ro.soc.manufacturer", "ro.soc.model", "ro.board.platform", "ro.product.cpu.abi",
        "ro.product.cpu.abilist", "ro.build.version.sdk", "ro.build.version.release", "ro.serialno",
    ):  # fmt: skip
        assert props[key], key
    assert props["ro.adb.secure"] == "0"
    assert props["ro.serialno"] == "SERIAL1"
    assert props["ro.product.model"] == flagship.model
    assert props["ro.build.version.sdk"] == str(flagship.sdk)
    assert props["ro.product.cpu.abi"] == "x86_64"
    assert props["ro.edgeship.ram_bytes"] == str(flagship.ram_bytes)
    assert props["ro.hardware"] == flagship.props["ro.hardware"]


def test_user_folder_and_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    folder = tmp_path / "edgeship" / "vdevice-profiles"
    folder.mkdir(parents=True)
    (folder / "tiny2g.yaml").write_text("model: Tiny 2G\nram_bytes: 2147483648\nsdk: 30\nrelease: '11'\n")
    profile = load_profile("tiny2g")
    assert (profile.name, profile.model, profile.ram_bytes, profile.sdk) == ("tiny2g", "Tiny 2G", 2**31, 30)
    assert "tiny2g" in {p.name for p in list_profiles()}
    other = tmp_path / "other.yaml"
    other.write_text(
        "name: other\nmodel: Other\nprops:\n  ro.custom: yes-please\n  ro.flag: false\n  ro.n: 3\n"
    )
    props = load_profile(other).system_properties("S")
    assert (props["ro.custom"], props["ro.flag"], props["ro.n"]) == ("yes-please", "false", "3")


def test_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(UsageError, match="unknown device profile 'nope'"):
        load_profile("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: X\nram: 3\n")
    with pytest.raises(InputError, match="unknown keys"):
        load_profile(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("name: m\n")
    with pytest.raises(InputError, match="missing model"):
        load_profile(missing)
