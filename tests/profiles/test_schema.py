"""profile.json: round trip, atomic writes, validation messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeship.errors import InputError
from edgeship.profiles.schema import (
    PROFILE_SCHEMA,
    TOP_LEVEL_KEYS,
    ExitStatus,
    Iteration,
    Latency,
    Memory,
    Profile,
    SectionResidency,
    load_profile,
    validate_profile,
    write_profile,
)
from edgeship.profiles.summary import summarize_iterations


def sample_profile() -> Profile:
    iteration = Iteration(
        index=1,
        warmup=False,
        latency=Latency(init_s=0.5, ttft_s=0.05, ttft_definition="prefill + 1 step", decode_tok_s=40.0),
        memory=Memory(peak_rss=1 << 27, sections={"tf_lite_embedder": SectionResidency(4096, 2048)}),
        exit=ExitStatus(code=0),
        timeline="iter-1/timeline.csv",
        wall_s=1.5,
    )
    profile = Profile(
        device={
            key: None
            for key in (
                "serial",
                "model",
                "manufacturer",
                "soc",
                "abi",
                "sdk",
                "release",
                "ram_total",
                "adb_server",
            )
        },
        bundle={"sha256": "0" * 64, "manifest_sha256": "1" * 64, "sections": []},
        runner={"name": "litert_lm_main"},
        probe={"sha256": "2" * 64},
        config={
            key: None
            for key in (
                "backend",
                "threads",
                "prefill",
                "decode",
                "iterations",
                "warmup",
                "interval_ms",
                "max_tokens",
                "timeout_s",
            )
        },
        iterations=[iteration],
    )
    profile.summary = summarize_iterations(profile.iterations)
    return profile


def test_round_trip(tmp_path: Path) -> None:
    profile = sample_profile()
    path = tmp_path / "dev" / "profile.json"
    write_profile(profile, path)
    data = json.loads(path.read_text())
    assert list(data) == list(TOP_LEVEL_KEYS)
    assert data["schema"] == PROFILE_SCHEMA
    assert validate_profile(data) == []
    loaded = load_profile(path.parent)  # a folder holding profile.json works too
    assert loaded.iterations[0].memory.sections["tf_lite_embedder"] == SectionResidency(4096, 2048)
    assert loaded.iterations[0].memory.peak_pss is None
    assert loaded.to_dict() == data
    assert [p.name for p in path.parent.iterdir()] == ["profile.json"]  # no temp file left behind


def test_validation_names_missing_keys() -> None:
    data = sample_profile().to_dict()
    del data["state"]
    del data["iterations"][0]["memory"]["hwm"]
    data["iterations"][0]["exit"]["status"] = "exploded"
    problems = validate_profile(data)
    assert "missing top-level key 'state'" in problems
    assert "missing key iterations[0].memory.hwm" in problems
    assert any("exit.status is 'exploded'" in p for p in problems)


def test_load_profile_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_profile(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ half")
    with pytest.raises(InputError, match="not valid JSON"):
        load_profile(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(InputError) as info:
        load_profile(wrong)
    assert "\n" not in str(info.value) and "schema is 'other/1'" in str(info.value)


def test_extra_keys_from_newer_writers_are_tolerated(tmp_path: Path) -> None:
    data = sample_profile().to_dict()
    data["iterations"][0]["latency"]["future_figure"] = 1.0
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    assert load_profile(path).iterations[0].latency.decode_tok_s == 40.0
