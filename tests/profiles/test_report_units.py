"""`edgeship report` on constructed profiles (no raw probe output beside them) and on every bad input."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeship.profiles.collect import load_profiles
from edgeship.profiles.report import make_report, report_json, report_markdown
from edgeship.profiles.report.plots import scope_ids
from tests.cli import EdgeshipCli
from tests.profiles.factory import MIB, make_profile, write
from tests.profiles.test_gate import bad_inputs

Report = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def report(cli: EdgeshipCli) -> Report:
    """`edgeship report ARGS...` through the tests' CLI helper."""
    return lambda *args: cli("report", *args, timeout=120)


def test_matrix_of_devices_and_bundles(tmp_path: Path) -> None:
    write(make_profile([100, 101, 99], pss=[100 * MIB] * 3), tmp_path)
    write(make_profile([50, 51, 49], recipe="int4", sha="11" * 32), tmp_path)
    write(make_profile([80, 81, 79], serial="127.0.0.1:40002", model="Virtual Budget 4G"), tmp_path)
    built = make_report([tmp_path])
    assert len(built.devices) == 2 and len(built.bundles) == 2
    data = report_json(built)
    cells = {
        (row["device"].split(" (")[0], row["bundle"].split()[1]): row["decode_tok_s"]
        for row in data["matrix"]
    }
    assert cells == {("Virtual Flagship 12G", "int8"): 100, ("Virtual Flagship 12G", "int4"): 50,
                     ("Virtual Budget 4G", "int8"): 80}  # fmt: skip
    text = report_markdown(built)
    [row] = [line for line in text.splitlines() if line.startswith("| Virtual Budget 4G (127.0.0.1:40002) |")]
    assert sorted(row.strip("| ").split(" | ")[1:]) == [
        "decode 80.0 tok/s · PSS 100.0 MiB · PLE 4.0 MiB",
        "—",
    ]


def test_without_build_or_raw_output_the_report_says_what_it_lacks(tmp_path: Path) -> None:
    write(make_profile([100, 101, 99]), tmp_path)
    [entry] = make_report([tmp_path]).entries
    assert entry.timeline is None
    assert entry.check.plan is None
    assert "build dir not found (pass --build BUILD_DIR)" in entry.check.verdict
    assert entry.check.verdict.startswith("fits with")  # from the measured peak against the device's RAM
    assert [claim.claim for claim in entry.claims] == [
        '"only the core weights are loaded; the PLE table is fetched on demand"'
    ]


def test_svg_ids_are_scoped() -> None:
    svg = '<svg><clipPath id="p1"/><use xlink:href="#m1"/><g clip-path="url(#p1)" id="line2d_1"/></svg>'
    assert scope_ids(svg, "k") == (
        '<svg><clipPath id="k-p1"/><use xlink:href="#k-m1"/><g clip-path="url(#k-p1)" id="k-line2d_1"/></svg>'
    )


def test_every_bad_input_is_one_line_exit_2_and_the_output_untouched(report: Report, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name, (path, message) in bad_inputs(tmp_path).items():
        if name == "no matching baseline":
            continue  # a gate input, not a report one
        html, md = out / "report.html", out / "report.md"
        html.write_text("previous report")
        result = report(str(path), "-o", str(html), "--md", str(md))
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (name, result.stderr)
        assert html.read_text() == "previous report" and not md.exists(), name
        assert sorted(p.name for p in out.iterdir()) == ["report.html"], name  # no temp file left behind


def test_mixed_schema_versions_are_refused(report: Report, tmp_path: Path) -> None:
    good = write(make_profile([100, 101, 99]), tmp_path, "runs")
    other = write(make_profile([100, 101, 99], serial="127.0.0.1:40009"), tmp_path, "runs")
    other.write_text(json.dumps({**json.loads(other.read_text()), "schema": "edgeship.profile/2"}))
    result = report(str(good.parents[2]), "--md", "-")
    assert result.returncode == 2 and "edgeship.profile/2 profile" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to write"),
        (["--md", "-", "--json", "-"], "only one of --md and --json"),
        (["-o", "-"], "-o takes a file path"),
        (
            ["--md", "-", "--build", "/nonexistent-build"],
            "--build /nonexistent-build: /nonexistent-build is not a",
        ),
    ],
)
def test_usage_errors(report: Report, tmp_path: Path, args: list[str], message: str) -> None:
    path = write(make_profile([100, 101, 99]), tmp_path)
    result = report(str(path), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_load_profiles_accepts_files_folders_and_runs_dirs(tmp_path: Path) -> None:
    path = write(make_profile([100, 101, 99]), tmp_path)
    for item in (path, path.parent, tmp_path):
        assert [loaded.path for loaded in load_profiles([item])] == [path.resolve()]
