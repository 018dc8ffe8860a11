"""Planner formulas against the reference arithmetic (gemma-ple-kv.md §5) and `edgeship plan`'s bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeship.profiles.planner import (
    BuildFacts,
    architecture_bytes,
    budget_for,
    fit_verdict,
    full_attention_bytes,
    minimum_memory,
    plan_memory,
    ple_resident,
)
from edgeship.profiles.planner import Plan as PlanOf
from edgeship.profiles.planner.calibration import (
    Calibration,
    MinimumCalibration,
    load_calibrations,
    write_calibration_file,
)
from edgeship.profiles.planner.kv import layout_from_attention, layout_from_manifest
from tests.cli import EdgeshipCli

MIB = 1024 * 1024
G4_E4B = {
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 7,
    "sliding_window": 512,
    "kv_shared_layers": 18,
    "head_dim": 256,
    "global_head_dim": 512,
    "num_key_value_heads": 2,
}
G4_E2B = {
    "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * 7,
    "sliding_window": 512,
    "kv_shared_layers": 20,
    "head_dim": 256,
    "global_head_dim": 512,
    "num_key_value_heads": 1,
}


def test_the_74_percent_claim_for_gemma4_e4b_at_2k() -> None:
    base = full_attention_bytes(G4_E4B, 2048, 2)
    actual = architecture_bytes(G4_E4B, 2048, 2)
    assert base == 205_520_896  # 196 MiB, the reference's worked arithmetic
    assert actual == 52 * MIB
    assert 1 - actual / base == pytest.approx(0.735, abs=0.001)


def test_litert_torch_default_layout_gives_sliding_layers_the_whole_cache() -> None:
    layout = layout_from_attention(G4_E2B, 4096)
    assert len(layout.layers) == 15  # the 20 shared layers own no cache
    assert layout.bytes == 144 * MIB  # fp32, no ring buffer (reference §5.1)
    assert not layout.sliding_capped


def test_a_recorded_ring_buffer_layout_is_read_from_the_manifest() -> None:
    entries = [
        {"layer": 0, "layer_type": "sliding_attention", "k_shape": [1, 1, 512, 256],
         "v_shape": [1, 1, 256, 512], "dtype": "float32"},
        {"layer": 1, "layer_type": "full_attention", "k_shape": [1, 1, 4096, 512],
         "v_shape": [1, 1, 512, 4096], "dtype": "float32"},
    ]  # fmt: skip
    layout = layout_from_manifest(entries)
    assert layout.bytes == (2 * 256 * 512 + 2 * 512 * 4096) * 4
    assert layout.sliding_capped and "manifest" in layout.source


def test_ple_residency_follows_fault_around_windows() -> None:
    table = 128 * MIB
    window = 64 * 1024
    # a few tokens: one window each
    assert ple_resident(table, table, 10, window, 0.0) == pytest.approx(10 * window, rel=0.01)
    # many tokens: windows repeat, and the table is the ceiling
    assert ple_resident(table, table, 10**6, window, 0.0) == table
    # the ple-heavy measurements of BENCHMARKS.md (32+16 … 32+512 tokens) lie within 20% of the model
    for tokens, measured_mib in ((48, 3.56), (96, 6.43), (288, 17.70), (544, 29.89)):
        assert ple_resident(table, table, tokens, window, 0.0) / MIB == pytest.approx(measured_mib, rel=0.2)


def a_plan(minimum: MinimumCalibration | None) -> PlanOf:
    calibration = Calibration(
        runner="r 1",
        overhead_pss=50 * MIB,
        transformer_anon_per_byte=2.0,
        file_resident_share={"transformer": 0.5, "embedder": 1.0, "ple": 0.0, "other": 1.0},
        fault_around_bytes=64 * 1024,
        minimum=minimum,
    )
    build = BuildFacts(
        "sha",
        (
            ("tf_lite_prefill_decode", 20 * MIB),
            ("tf_lite_embedder", 2 * MIB),
            ("tf_lite_per_layer_embedder", 100 * MIB),
        ),
        {"table_bytes": 100 * MIB, "vocab": 1000, "row_bytes": 100 * 1024},
        0,
        {},
    )
    return plan_memory(build, calibration, distinct_tokens=10)


def test_the_minimum_is_the_peak_until_fit_curves_calibrate_what_a_run_needs_beyond_it() -> None:
    uncalibrated = a_plan(None)
    bundle = 123 * MIB
    alone = minimum_memory(uncalibrated, bundle)
    assert alone.bytes == alone.peak == uncalibrated.total and "no fit curve" in alone.how
    # the terms mapped from the file: half the transformer, the embedder, ~ten 64 KiB PLE windows
    mapped = 10 * MIB + 2 * MIB + 10 * 64 * 1024
    assert alone.unmapped_read == pytest.approx(bundle - mapped, abs=64 * 1024)
    calibrated = a_plan(MinimumCalibration(beyond_peak=16 * MIB, bundle_read_share=0.5))
    minimum = minimum_memory(calibrated, bundle)
    assert minimum.peak == calibrated.total == uncalibrated.total  # the peak does not change
    assert minimum.bytes == calibrated.total + 16 * MIB + alone.unmapped_read // 2
    assert "16.0 MiB beside it" in minimum.how and "50%" in minimum.how
    assert minimum.to_dict()["minimum"] == minimum.bytes
    # a bundle smaller than what its terms map reads nothing more at init
    assert minimum_memory(calibrated, mapped // 2).unmapped_read == 0


def test_the_fitted_minimum_survives_a_rewrite_of_the_calibration_file(tmp_path: Path) -> None:
    path = tmp_path / "calibration.yaml"
    entry = {
        "overhead_pss": 1, "transformer_anon_per_byte": 1.0, "fault_around_bytes": 4096,
        "file_resident_share": {"transformer": 0.0, "embedder": 0.0, "ple": 0.0, "other": 0.0},
    }  # fmt: skip
    write_calibration_file(
        {"a 1": entry, "b 1": {**entry, "minimum": {"beyond_peak": 7, "bundle_read_share": 0.25}}}, path
    )
    loaded = load_calibrations(path)
    assert loaded["a 1"].minimum is None
    assert loaded["b 1"].minimum == MinimumCalibration(7, 0.25, {})


def test_fit_verdict_and_budget(plan: Plan) -> None:
    budget = budget_for("4GB phone", 4 * 10**9)
    assert budget.usable == int(0.55 * 4 * 10**9)
    assert fit_verdict(1_000_000_000, budget.usable) == "fits with 1.2 GB headroom"
    assert fit_verdict(2_500_000_000, budget.usable) == "over by 300 MB"


Plan = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def plan(cli: EdgeshipCli) -> Plan:
    """`edgeship plan ARGS...` through the tests' CLI helper."""
    return lambda *args: cli("plan", *args, timeout=60)


def fake_build(tmp_path: Path, manifest: dict | str | None) -> Path:
    build = tmp_path / "build"
    build.mkdir(exist_ok=True)
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (build / "manifest.json").write_text(text)
    return build


def test_plan_of_a_real_manifest_is_json_with_every_term(
    plan: Plan, tmp_path: Path, tiny_gemma4_build: Path
) -> None:
    result = plan(str(tiny_gemma4_build), "--ram", "4GB", "--device-profile", "vbudget4g", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    names = [term["name"] for term in data["terms"]]
    assert names[0].startswith("transformer") and "KV cache" in names and names[-1] == "runtime"
    assert data["total"] == sum(term["bytes"] for term in data["terms"])
    assert [d["fits"] for d in data["devices"]] == [True, True]
    assert data["devices"][1]["ram_total"] == 4 * 1024**3
    assert data["calibration"]["source"]["command"].startswith("python benchmarks/calibrate_planner.py")


@pytest.mark.parametrize(
    "case, message",
    [
        ("no manifest", "has no manifest.json"),
        ("truncated manifest", "is not valid JSON"),
        ("other schema", "expected 'edgeship.manifest/1'"),
        ("missing key", "lacks 'export'"),
        ("bad ram", "--ram: 'lots' is not a size"),
        ("context past the cache", "past the bundle's KV cache of 1024 positions"),
        ("unknown device profile", "--device-profile 'nope'"),
        ("unknown runner", "--runner 'other 1' has no calibration"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    plan: Plan, tmp_path: Path, tiny_gemma4_build: Path, case: str, message: str
) -> None:
    real = json.loads((tiny_gemma4_build / "manifest.json").read_text())
    args: list[str] = []
    if case == "no manifest":
        build = fake_build(tmp_path, None)
    elif case == "truncated manifest":
        build = fake_build(tmp_path, json.dumps(real)[:300])
    elif case == "other schema":
        build = fake_build(tmp_path, {**real, "schema": "edgeship.manifest/9"})
    elif case == "missing key":
        build = fake_build(tmp_path, {k: v for k, v in real.items() if k != "export"})
    else:
        build = tmp_path / "build"
        shutil.copytree(tiny_gemma4_build, build)
        args = {
            "bad ram": ["--ram", "lots"],
            "context past the cache": ["--context", "5000"],
            "unknown device profile": ["--device-profile", "nope"],
            "unknown runner": ["--runner", "other 1"],
        }[case]
    result = plan(str(build), *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
