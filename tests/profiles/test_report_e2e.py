"""report, gate and plan on real profiles: the tiny and ple-heavy builds profiled on a virtual device.

The profiles are measured once per module through `edgeship profile` (real adb server, virtual device, probe,
LiteRT-LM runner); the report is opened in headless Chromium; the planner is checked against the peak PSS
measured in this same session, never against a stored figure.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeship.profiles.figures import FIGURES_BY_NAME, figure_values
from edgeship.profiles.planner import load_calibrations, plan_build, read_build_facts, runner_key
from edgeship.profiles.planner.fit import distinct_tokens_of, measured_pss
from edgeship.profiles.report import JSON_SCHEMA_FILE
from edgeship.profiles.schema import load_profile
from edgeship.vdevice import VirtualDevice
from tests.cli import EdgeshipCli
from tests.profiles.chromium import Browser, find_browser

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "report-screenshot.png"
ANON_RGB = (0x3B, 0x6F, 0xB6)  # plots.ANON: the anonymous-memory line
# As benchmarks/calibrate_planner.py measures: long enough for several smaps_rollup (PSS) reads.
DECODE = "512"


def edgeship(cli: EdgeshipCli, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return cli(*args, timeout=timeout)


@pytest.fixture(scope="module")
def measured(
    adb_server: Any, tiny_gemma4_build: Path, ple_heavy_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """RUNS_DIR: a profile of each build on one virtual device (3 + 1 warm-up runs, decode 512)."""
    root = tmp_path_factory.mktemp("report-e2e")
    device = VirtualDevice(
        name="report-e2e", profile="vflagship", root=root / "vd", log_file=root / "vd.log"
    ).start()
    cli = EdgeshipCli(root / "cli").with_server(adb_server)  # tests/cli.py, for this module's runs
    try:
        adb_server.connect(device.serial)
        runs = root / "runs"
        profiles = {}
        for name, build in (("tiny", tiny_gemma4_build), ("ple-heavy", ple_heavy_build)):
            result = edgeship(
                cli, "profile", str(build), "--device", device.serial, "--prefill", "32", "--decode", DECODE,
                "--iterations", "3", "--warmup", "1", "--smaps-interval-ms", "50", "-o", str(runs), "--json",
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            [entry] = json.loads(result.stdout)
            profiles[name] = (Path(entry["profile"]), build)
        yield {"runs": runs, "profiles": profiles, "cli": cli, "root": root, "serial": device.serial}
    finally:
        adb_server.disconnect(device.serial)
        device.stop()


@pytest.fixture(scope="module")
def report_files(measured: dict[str, Any]) -> dict[str, Path]:
    out = measured["root"] / "out"
    paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "summary.json"}
    result = edgeship(
        measured["cli"], "report", str(measured["runs"]), "-o", str(paths["html"]), "--md", str(paths["md"]),
        "--json", str(paths["json"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return paths


def test_json_summary_matches_its_schema_and_the_profiles(
    report_files: dict[str, Path], measured: dict
) -> None:
    import jsonschema  # pinned in the dev extra: a missing one fails, never skips

    data = json.loads(report_files["json"].read_text())
    jsonschema.validate(data, json.loads(JSON_SCHEMA_FILE.read_text()))
    assert len(data["entries"]) == 2 and len(data["matrix"]) == 2
    for entry in data["entries"]:
        profile = load_profile(entry["profile"])
        decode = figure_values(profile, FIGURES_BY_NAME["decode_tok_s"])
        assert entry["latency"]["decode_tok_s"]["median"] == statistics.median(decode)
        assert entry["latency"]["decode_tok_s"]["n"] == 3
        assert entry["timeline"]["samples"] > 2
        assert [p["name"] for p in entry["timeline"]["phases"]] == ["init", "prefill", "decode"]
        ple = next(s for s in entry["sections"] if s["kind"] == "tf_lite_per_layer_embedder")
        assert 0 < ple["resident_peak"]["median"] <= ple["bytes"]
        assert entry["plan"]["predicted_pss"] > 0 and entry["plan"]["verdict"].startswith("fits with")
        assert any("74%" in claim["claim"] for claim in entry["claims"])


def test_markdown_has_the_matrix_and_every_device(report_files: dict[str, Path], measured: dict) -> None:
    text = report_files["md"].read_text()
    assert text.startswith("## edgeship report")
    assert "| device | gemma4 int8 " in text
    assert text.count("### Virtual Flagship 12G") == 2
    assert "| per_layer_embedder |" in text and "unexplained remainder" in text
    stdout = edgeship(measured["cli"], "report", str(measured["runs"]), "--md", "-")
    assert stdout.returncode == 0 and stdout.stdout == text


def test_html_is_self_contained(report_files: dict[str, Path]) -> None:
    html = report_files["html"].read_text()
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html
    assert re.findall(r"url\((?!#)", html) == []  # only the SVGs' own clip paths (url(#id))
    assert re.findall(r"""(?:src|href)=["'](?!#)""", html) == []  # no file or URL, only in-page references
    ids = re.findall(r"""\sid=["']([^"']+)""", html)
    assert len(ids) == len(set(ids))  # two inlined SVGs must not share a clip-path or marker id
    for ref in set(re.findall(r"""(?:href=["']|url\()#([^"')]+)""", html)):
        assert ref in ids, ref
    assert html.count("<svg") == 2  # one timeline per device × bundle, inline


def test_html_in_chromium_loads_clean_and_draws_its_plots(report_files: dict[str, Path]) -> None:
    from PIL import Image

    binary = find_browser()
    if binary is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    browser = Browser(binary)
    try:
        seen = browser.load(report_files["html"])
        assert seen.exceptions == []
        assert [
            m for m in seen.console if m.get("type") in ("error", "warning") or m.get("level") == "error"
        ] == []
        assert seen.requests == [report_files["html"].resolve().as_uri()]  # nothing but the file itself
        boxes = json.loads(
            browser.evaluate(
                "JSON.stringify([...document.querySelectorAll('figure.timeline svg')].map(e => {"
                "const r = e.getBoundingClientRect(); "
                "return [r.x, r.y + window.scrollY, r.width, r.height]}))"
            )
        )
        assert len(boxes) == 2
        for box in boxes:
            assert box[2] > 300 and box[3] > 100
            image = Image.open(__import__("io").BytesIO(browser.screenshot(tuple(box)))).convert("RGB")
            raw = image.tobytes()
            pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
            inked = sum(1 for p in pixels if sum(p) < 600) / len(pixels)
            anon = sum(1 for p in pixels if all(abs(a - b) < 40 for a, b in zip(p, ANON_RGB, strict=True)))
            assert inked > 0.02, "the timeline plot is blank"
            assert anon > 100, "the anonymous-memory line is not drawn"
        # The README's picture: the top of the report, made by this code path (refresh with the env var).
        if os.environ.get("EDGESHIP_UPDATE_DOCS") == "1":
            height = min(1500.0, float(browser.evaluate("document.documentElement.scrollHeight")))
            SCREENSHOT.write_bytes(browser.screenshot((0, 0, 1200, height)))
    finally:
        browser.close()


def test_planner_is_within_10_percent_of_this_session_measurement(measured: dict[str, Any]) -> None:
    for name, (path, build) in measured["profiles"].items():
        profile = load_profile(path)
        runner = runner_key(profile.runner.get("name"), profile.runner.get("version"))
        assert runner in load_calibrations(), (
            f"no planner calibration for runner {runner!r}: run `python benchmarks/calibrate_planner.py`"
        )
        plan = plan_build(read_build_facts(build), runner=runner, distinct_tokens=distinct_tokens_of(profile))
        # The peak PSS measured in this session; when other host processes shared the runner's files during
        # the runs (PSS well below RSS), the runner's own PSS, its RSS (planner/fit.py says why).
        figure, what = measured_pss(profile)
        assert figure is not None, f"{name}: no ok run"
        error = (plan.total - figure) / figure
        assert abs(error) <= 0.10, f"{name}: predicted {plan.total}, measured {what} {figure} ({error:+.1%})"


def test_plan_reads_the_device_ram_live(measured: dict[str, Any], tiny_gemma4_build: Path) -> None:
    result = edgeship(
        measured["cli"], "plan", str(tiny_gemma4_build), "--device", measured["serial"], "--json"
    )
    assert result.returncode == 0, result.stderr
    [device] = json.loads(result.stdout)["devices"]
    assert device["ram_total"] > 0 and device["available_now"] is not None
    assert device["usable"] == int(device["ram_total"] * 0.55) and device["fits"] is True


def test_gate_of_a_profile_against_itself_passes(measured: dict[str, Any]) -> None:
    runs = str(measured["runs"])
    result = edgeship(measured["cli"], "gate", "--baseline", runs, "--current", runs, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [pair["status"] for pair in data["pairs"]] == ["compared", "compared"]
    assert all(v["verdict"] == "same" for pair in data["pairs"] for v in pair["verdicts"])
