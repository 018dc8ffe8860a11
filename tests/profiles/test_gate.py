"""`edgeship gate` on constructed pairs: decisions, exit codes, thresholds, incomparable pairs, bad input."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeship.errors import UsageError
from edgeship.profiles.figures import FIGURES_BY_NAME
from edgeship.profiles.gate import (
    IMPROVEMENT,
    INCOMPARABLE,
    INCONCLUSIVE,
    NO_BASELINE,
    REGRESSION,
    SAME,
    Thresholds,
    decide,
    load_thresholds,
)
from tests.cli import EdgeshipCli
from tests.profiles.factory import MIB, make_profile, write

DECODE = FIGURES_BY_NAME["decode_tok_s"]
TTFT = FIGURES_BY_NAME["ttft_s"]
PSS = FIGURES_BY_NAME["peak_pss"]
PLE = FIGURES_BY_NAME["ple_resident"]


Gate = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_gate(cli: EdgeshipCli) -> Gate:
    """`edgeship gate ARGS...` through the tests' CLI helper; ``config``: the edgeship.yaml text it reads."""

    def run(*args: str, config: str | None = None) -> subprocess.CompletedProcess[str]:
        return (cli.with_config(config) if config is not None else cli)("gate", *args, timeout=60)

    return run


def test_clear_regression_with_three_against_three() -> None:
    verdict = decide(DECODE, [100.0, 101.0, 99.0], [80.0, 82.0, 81.0], Thresholds())
    assert verdict.verdict == REGRESSION
    assert verdict.p == pytest.approx(0.05)
    assert verdict.change == pytest.approx(-0.19, abs=0.01)


def test_separation_below_the_minimum_change_is_not_a_regression() -> None:
    verdict = decide(DECODE, [100.0, 101.0, 102.0], [97.0, 97.5, 98.0], Thresholds())
    assert verdict.verdict == SAME  # significant, but −3.5% is below the 5% that matters


def test_change_within_noise_is_same() -> None:
    verdict = decide(DECODE, [100.0, 95.0, 104.0, 98.0], [99.0, 103.0, 96.0, 101.0], Thresholds())
    assert verdict.verdict == SAME


def test_overlap_with_too_few_runs_is_inconclusive_and_says_how_many() -> None:
    verdict = decide(DECODE, [100.0, 70.0, 101.0], [80.0, 99.0, 79.0], Thresholds())
    assert verdict.verdict == INCONCLUSIVE
    assert "runs per side" in verdict.note


def test_fewer_than_three_runs_is_always_inconclusive() -> None:
    verdict = decide(DECODE, [100.0, 100.0], [10.0, 10.0, 10.0], Thresholds())
    assert verdict.verdict == INCONCLUSIVE
    assert "needs ≥ 3 ok runs per side (has 2 vs 3)" in verdict.note


def test_ttft_direction_and_improvement() -> None:
    assert decide(TTFT, [0.10, 0.11, 0.12], [0.20, 0.21, 0.22], Thresholds()).verdict == REGRESSION
    assert decide(TTFT, [0.20, 0.21, 0.22], [0.10, 0.11, 0.12], Thresholds()).verdict == IMPROVEMENT


def test_memory_thresholds_max_of_absolute_and_relative() -> None:
    base = [100 * MIB] * 3
    assert decide(PSS, base, [110 * MIB] * 3, Thresholds()).verdict == SAME  # +10 MiB < 16 MiB
    assert decide(PSS, base, [117 * MIB] * 3, Thresholds()).verdict == REGRESSION
    big = [2000 * MIB] * 3
    assert decide(PSS, big, [2030 * MIB] * 3, Thresholds()).verdict == SAME  # +30 MiB < 2% = 40 MiB
    assert decide(PSS, big, [2050 * MIB] * 3, Thresholds()).verdict == REGRESSION
    assert decide(PLE, [10 * MIB], [10.9 * MIB], Thresholds()).verdict == SAME  # one run is enough for memory
    assert decide(PLE, [10 * MIB], [11.2 * MIB], Thresholds()).verdict == REGRESSION


def test_cli_regression_exits_1_and_prints_the_table(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101, 99]), tmp_path, "base")
    current = write(make_profile([80, 82, 81], sha="99" * 32), tmp_path, "current")
    result = run_gate(
        "--baseline", str(base.parents[2]), "--current", str(current), "--md", str(tmp_path / "g.md")
    )
    assert result.returncode == 1, result.stderr
    assert "| decode | 100.0 tok/s | 81.0 tok/s | -19.0% | 0.05 | 3/3 | ❌ regression |" in result.stdout
    assert "edgeship: error: 1 regression(s)" in result.stderr
    assert (tmp_path / "g.md").read_text() == result.stdout


def test_cli_pass_and_json(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101, 99]), tmp_path, "base")
    current = write(make_profile([100, 100.5, 99.5]), tmp_path, "current")
    result = run_gate("--baseline", str(base), "--current", str(current), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == "edgeship.gate/1" and data["outcome"] == "pass"
    assert {v["figure"]: v["verdict"] for v in data["pairs"][0]["verdicts"]}["decode_tok_s"] == SAME


def test_inconclusive_warns_and_strict_exits_3(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101]), tmp_path, "base")
    current = write(make_profile([80, 82]), tmp_path, "current")
    relaxed = run_gate("--baseline", str(base), "--current", str(current))
    assert relaxed.returncode == 0 and "could not be decided" in relaxed.stderr
    assert "needs ≥ 3 ok runs per side (has 2 vs 2)" in relaxed.stdout
    strict = run_gate("--baseline", str(base), "--current", str(current), "--strict")
    assert strict.returncode == 3, strict.stderr


def test_incomparable_pairs_are_reported_not_compared(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101, 99]), tmp_path, "base")
    other_runner = write(make_profile([50, 50, 50], runner_version="other"), tmp_path, "runner")
    other_config = write(make_profile([50, 50, 50], config={"decode": 256}), tmp_path, "config")
    # The baseline has no weight_cache key (older profiles): it ran with LiteRT-LM's own cache, "keep".
    assert "weight_cache" not in json.loads(base.read_text())["config"]
    no_cache = write(make_profile([50, 50, 50], config={"weight_cache": "off"}), tmp_path, "off")
    same_cache = write(make_profile([100, 101, 99], config={"weight_cache": "keep"}), tmp_path, "keep")
    result = run_gate("--baseline", str(base), "--current", str(same_cache), "--json")
    assert [pair["status"] for pair in json.loads(result.stdout)["pairs"]] == ["compared"]
    for current, reason in (
        (other_runner, "runner"),
        (other_config, "decode 128 vs 256"),
        (no_cache, "weight_cache keep vs off"),
    ):
        result = run_gate("--baseline", str(base), "--current", str(current), "--json")
        assert result.returncode == 0, result.stderr
        [pair] = json.loads(result.stdout)["pairs"]
        assert pair["status"] == INCOMPARABLE and pair["verdicts"] == []
        assert any(reason in text for text in pair["reasons"])
        assert run_gate("--baseline", str(base), "--current", str(current), "--strict").returncode == 3


def test_a_second_device_without_baseline_is_listed(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101, 99]), tmp_path, "base")
    write(make_profile([100, 101, 99], serial="127.0.0.1:40002"), tmp_path, "current")
    write(
        make_profile([100, 101, 99], serial="127.0.0.1:40003", model="Virtual Budget 4G"), tmp_path, "current"
    )
    result = run_gate("--baseline", str(base), "--current", str(tmp_path / "current"), "--json")
    assert result.returncode == 0, result.stderr
    statuses = sorted(pair["status"] for pair in json.loads(result.stdout)["pairs"])
    assert statuses == ["compared", NO_BASELINE]


def test_failed_runs_are_a_regression(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101, 99, 100]), tmp_path, "base")
    current = write(make_profile([100, 101, 99, 100], statuses=["ok", "ok", "ok", "signal"]), tmp_path, "cur")
    result = run_gate("--baseline", str(base), "--current", str(current))
    assert result.returncode == 1
    assert "failed runs" in result.stdout and "killed" in result.stdout


def test_thresholds_yaml_and_config_gate_key(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101, 99]), tmp_path, "base")
    current = write(make_profile([93, 94, 93.5]), tmp_path, "current")  # −6.5%
    assert run_gate("--baseline", str(base), "--current", str(current)).returncode == 1
    loose = tmp_path / "gate.yaml"
    loose.write_text("latency:\n  decode_tok_s: 10%\n")
    assert (
        run_gate("--baseline", str(base), "--current", str(current), "--thresholds", str(loose)).returncode
        == 0
    )
    result = run_gate(
        "--baseline", str(base), "--current", str(current), config="gate:\n  latency:\n    decode_tok_s: 8\n"
    )
    assert result.returncode == 0, result.stdout
    assert "edgeship.yaml gate" in result.stdout


@pytest.mark.parametrize(
    "text, message",
    [
        ("latency:\n  decode: 5%\n", "unknown keys ['decode']"),
        ("alpha: 0.05\nwindow: 3\n", "unknown keys ['window']"),
        ("memory:\n  peak_pss: {bytes: 16MiB, pct: 2}\n", "unknown keys ['pct']"),
        ("memory:\n  peak_pss: {bytes: lots}\n", "is not a size"),
        ("alpha: 2\n", "alpha must be between 0 and 1"),
        ("latency: [1, 2]\n", "must be a mapping"),
        ("latency: {decode_tok_s: 5%\n", "not valid YAML"),
    ],
)
def test_bad_thresholds_are_refused(run_gate: Gate, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_thresholds(None, path)
    base = write(make_profile([100, 101, 99]), tmp_path, "base")
    result = run_gate("--baseline", str(base), "--current", str(base), "--thresholds", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("edgeship: error: ")


def test_unknown_key_in_edgeship_yaml_gate_is_refused(run_gate: Gate, tmp_path: Path) -> None:
    base = write(make_profile([100, 101, 99]), tmp_path, "base")
    result = run_gate("--baseline", str(base), "--current", str(base), config="gate:\n  latncy: {}\n")
    assert result.returncode == 2 and "edgeship.yaml gate: unknown keys ['latncy']" in result.stderr


def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = write(make_profile([100, 101, 99]), tmp_path, "good")
    truncated = tmp_path / "truncated" / "profile.json"
    truncated.parent.mkdir()
    truncated.write_text(good.read_text()[:200])
    malformed = tmp_path / "malformed" / "profile.json"
    malformed.parent.mkdir()
    data = json.loads(good.read_text())
    del data["iterations"][0]["memory"]
    malformed.write_text(json.dumps(data))
    newer = tmp_path / "newer" / "profile.json"
    newer.parent.mkdir()
    newer.write_text(json.dumps({**json.loads(good.read_text()), "schema": "edgeship.profile/2"}))
    empty = tmp_path / "empty-runs"
    empty.mkdir()
    other = write(make_profile([100, 101, 99], model="Other Phone"), tmp_path, "other")
    return {
        "missing": (tmp_path / "nope", "does not exist"),
        "truncated": (truncated, "is not valid JSON"),
        "malformed": (malformed, "missing key iterations[0].memory"),
        "other schema version": (newer, "edgeship.profile/2 profile; this edgeship reads edgeship.profile/1"),
        "runs dir with no profiles": (empty, "holds no profile.json"),
        "no matching baseline": (other, "the baseline has no profile of any current device and bundle"),
    }


def test_every_bad_input_is_one_line_exit_2_and_nothing_written(run_gate: Gate, tmp_path: Path) -> None:
    good = write(make_profile([100, 101, 99]), tmp_path, "good")
    for name, (path, message) in bad_inputs(tmp_path).items():
        out = tmp_path / f"{name}.md"
        result = run_gate("--baseline", str(good), "--current", str(path), "--md", str(out))
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (name, result.stderr)
        assert not out.exists(), name
