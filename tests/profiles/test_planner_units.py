"""Planner formulas against the reference arithmetic (gemma-ple-kv.md §5) and `edgeship plan`'s bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeship.profiles.planner import (
    architecture_bytes,
    budget_for,
    fit_verdict,
    full_attention_bytes,
    ple_resident,
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
