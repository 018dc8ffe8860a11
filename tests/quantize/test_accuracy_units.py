"""The pieces of `verify` that need no model: statistics, the scoring plan, thresholds, prompt sets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgeship.errors import UsageError
from edgeship.quantize.kl_stats import score_position, summarize
from edgeship.quantize.prompts import builtin_prompts, load_prompts
from edgeship.quantize.scoring import (
    ALL_POSITIONS,
    BEYOND_WINDOW,
    INSIDE_WINDOW,
    Geometry,
    plan_segments,
    prefill_chunks,
)
from edgeship.quantize.thresholds import DEFAULTS, default_thresholds, judge, with_overrides

# --- statistics ------------------------------------------------------------------------------------------


def test_kld_of_two_known_distributions() -> None:
    """P = (1/2, 1/2), Q = (9/10, 1/10): KLD = ½ ln(5/9) + ½ ln 5 nats; Δp of P's top token (index 0)."""
    reference = np.log(np.array([0.5, 0.5], np.float32))
    bundle = np.log(np.array([0.9, 0.1], np.float32))
    score = score_position(reference, bundle, "p", 7, INSIDE_WINDOW)
    assert score.kld == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1), rel=1e-6)
    assert score.same_top  # argmax of both is index 0 (P ties; numpy picks the first)
    assert score.delta_p == pytest.approx(0.9 - 0.5, rel=1e-6)


def test_identical_logits_give_zero_and_agreement() -> None:
    logits = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    score = score_position(logits, logits.copy(), "p", 0, ALL_POSITIONS)
    assert score.kld == 0.0 and score.same_top and score.delta_p == 0.0


def test_logits_shifted_by_a_constant_are_the_same_distribution() -> None:
    logits = np.random.default_rng(2).standard_normal(512).astype(np.float32)
    assert score_position(logits, logits + 7.5, "p", 0, ALL_POSITIONS).kld < 1e-9


def test_summary_figures_follow_llama_cpp_definitions() -> None:
    rng = np.random.default_rng(3)
    scores = []
    for i in range(200):
        reference = rng.standard_normal(64).astype(np.float32)
        bundle = reference + rng.normal(0, 0.3, 64).astype(np.float32)
        scores.append(score_position(reference, bundle, "p", i, INSIDE_WINDOW))
    kld = np.array([s.kld for s in scores])
    summary = summarize(scores)
    assert summary["positions"] == 200
    assert summary["kld"]["mean"] == pytest.approx(kld.mean())
    assert summary["kld"]["median"] == pytest.approx(np.median(kld))
    assert summary["kld"]["p999"] == pytest.approx(np.percentile(kld, 99.9))
    assert (
        summary["kld"]["median"] <= summary["kld"]["p99"] <= summary["kld"]["p999"] <= summary["kld"]["max"]
    )
    top1 = np.mean([s.same_top for s in scores])
    assert summary["top1"]["agreement"] == pytest.approx(top1)
    assert summary["top1"]["stderr"] == pytest.approx(math.sqrt(top1 * (1 - top1) / 199))
    assert summary["delta_p_rms"] == pytest.approx(math.sqrt(np.mean([s.delta_p**2 for s in scores])))


def test_non_finite_bundle_logits_fail_the_gate() -> None:
    reference = np.zeros(8, np.float32)
    broken = np.full(8, np.nan, np.float32)
    summary = summarize([score_position(reference, broken, "p", 0, ALL_POSITIONS)])
    assert summary["non_finite"] == 1 and summary["kld"] is None
    assert judge(summary, default_thresholds("int4", 4)) == ["1 position(s) gave non-finite logits"]


# --- which positions are scored --------------------------------------------------------------------------


def test_prefill_chunks_use_exported_lengths_only() -> None:
    assert prefill_chunks(512, (32, 128)) == (128, 128, 128, 128)
    assert sum(prefill_chunks(96, (32, 128)) or ()) == 96
    assert prefill_chunks(40, (32, 128)) is None
    assert prefill_chunks(0, (32,)) == ()


def test_plan_splits_positions_inside_and_beyond_the_window() -> None:
    geometry = Geometry(sliding_window=512, cache_length=1024, prefill_lengths=(32, 128))
    segments = plan_segments([700] * 8, 256, geometry)
    assert sum(s.count for s in segments) == 256
    positions = [p for s in segments for p in s.positions]
    assert len(set(zip([s.prompt for s in segments for _ in s.positions], positions, strict=True))) == 256
    buckets = [geometry.bucket(p) for p in positions]
    assert buckets.count(INSIDE_WINDOW) == 128 and buckets.count(BEYOND_WINDOW) == 128
    for segment in segments:
        assert all(c in (32, 128) for c in segment.chunks)
        assert segment.start + segment.count <= 700


def test_plan_falls_back_to_shallow_for_short_prompts_and_refuses_too_few_positions() -> None:
    geometry = Geometry(sliding_window=512, cache_length=1024, prefill_lengths=(32, 128))
    segments = plan_segments([200] * 4, 100, geometry)
    assert sum(s.count for s in segments) == 100
    assert all(s.start == 32 for s in segments)
    with pytest.raises(UsageError, match="only 672 scorable positions"):
        plan_segments([200] * 4, 1000, geometry)


def test_no_sliding_layers_means_one_bucket() -> None:
    geometry = Geometry(sliding_window=None, cache_length=256, prefill_lengths=(32,))
    segments = plan_segments([300, 300], 64, geometry)
    assert {geometry.bucket(p) for s in segments for p in s.positions} == {ALL_POSITIONS}
    assert max(p for s in segments for p in s.positions) < 256  # never past the KV cache


# --- thresholds ------------------------------------------------------------------------------------------


def test_every_preset_has_defaults_and_yaml_recipes_get_their_tier() -> None:
    from edgeship.quantize.recipes import PRESETS

    assert set(PRESETS) <= set(DEFAULTS)
    assert default_thresholds("my-yaml", None).max_kl == DEFAULTS["float"][0]
    assert default_thresholds("my-yaml", 8).max_kl == DEFAULTS["int8"][0]
    assert default_thresholds("my-yaml", 4).min_top1 == DEFAULTS["int4"][1]
    assert DEFAULTS["float"][0] < DEFAULTS["int8"][0] <= DEFAULTS["int4"][0]
    assert DEFAULTS["float"][2] < DEFAULTS["int8"][2] < DEFAULTS["int4"][2]
    assert DEFAULTS["float"][1] > DEFAULTS["int8"][1] >= DEFAULTS["int4"][1]


@pytest.mark.parametrize(
    ("max_kl", "min_top1", "max_kl_p999", "message"),
    [
        (-0.1, None, None, "--max-kl must be"),
        (math.nan, None, None, "--max-kl must be"),
        (None, 1.5, None, "--min-top1 must be between 0 and 1"),
        (None, -0.01, None, "--min-top1 must be"),
        (None, None, math.inf, "--max-kl-p999 must be"),
    ],
)
def test_thresholds_out_of_range_are_usage_errors(
    max_kl: float | None, min_top1: float | None, max_kl_p999: float | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        with_overrides(default_thresholds("int8", 8), max_kl, min_top1, max_kl_p999)


def test_overrides_replace_only_what_is_given() -> None:
    base = default_thresholds("int8", 8)
    changed = with_overrides(base, None, 0.5, None)
    assert (changed.max_kl, changed.min_top1, changed.max_kl_p999) == (base.max_kl, 0.5, base.max_kl_p999)
    assert "--min-top1" in changed.source


def test_judge_names_each_missed_threshold() -> None:
    summary = {
        "non_finite": 0,
        "kld": {"mean": 0.02, "p999": 0.9, "median": 0.01, "p99": 0.5, "max": 1.0},
        "top1": {"agreement": 0.8},
    }
    failures = judge(summary, with_overrides(default_thresholds("int8", 8), 0.01, 0.9, 0.5))
    assert len(failures) == 3
    assert any("max-kl)" in f for f in failures) and any("min-top1" in f for f in failures)
    assert judge(summary, with_overrides(default_thresholds("int8", 8), 0.05, 0.5, 1.0)) == []


# --- prompt sets -----------------------------------------------------------------------------------------


def test_builtin_prompt_set_is_versioned_and_varied() -> None:
    prompts = builtin_prompts()
    assert prompts.version == "edgeship-prompts/1"
    assert len(prompts.prompts) >= 8
    assert len({p.name for p in prompts.prompts}) == len(prompts.prompts)
    assert all(len(p.text) > 2000 for p in prompts.prompts)
    assert prompts.sha256 == builtin_prompts().sha256


def test_prompt_file_blocks(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("first prompt\nstill first\n---\n\nsecond prompt\n---\n")
    prompts = load_prompts(path)
    assert [p.text for p in prompts.prompts] == ["first prompt\nstill first", "second prompt"]
    assert prompts.version is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "has no text"),
        (b"  \n---\n\n", "has no text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not text"),
        (b"caf\xe9 au lait", "not UTF-8"),
    ],
)
def test_unusable_prompt_files_are_one_line_usage_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "prompts.txt"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message) as info:
        load_prompts(path)
    assert "\n" not in str(info.value)


def test_missing_prompt_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_prompts(tmp_path / "nope.txt")
