"""The export's peak-memory prediction and its refusal, before any heavy work starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeship.errors import ExportError
from edgeship.exporter import memory
from edgeship.exporter.checkpoint import read_checkpoint
from edgeship.exporter.manifest import EMBEDDER_KIND, PLE_SECTION_KIND, PREFILL_DECODE_KIND
from edgeship.exporter.synthetic import _build_config, _tensor_shapes, synthetic_spec
from edgeship.quantize.recipes import resolve_recipe
from tests.cli import REPO


def test_graph_weights_follow_the_tensor_table(tiny_gemma4_checkpoint: Path) -> None:
    ckpt = read_checkpoint(tiny_gemma4_checkpoint)
    weights = memory.graph_weights(ckpt, externalize_embedder=True)
    ple = ckpt.find("embed_tokens_per_layer.weight")
    embed = ckpt.find("embed_tokens.weight")
    total = sum(t.numel for t in ckpt.text_tensors())
    assert weights.by_kind[PLE_SECTION_KIND] == ple.numel * 4
    assert weights.by_kind[EMBEDDER_KIND] == embed.numel * 4
    # Tied head: the token table is the output projection of the prefill/decode graph too.
    assert weights.by_kind[PREFILL_DECODE_KIND] == (total - ple.numel) * 4
    assert weights.widened_at_load == 0  # float32 weights are memory-mapped, not copied


def test_frugal_path_never_predicts_more_than_in_process(tiny_gemma4_checkpoint: Path) -> None:
    ckpt = read_checkpoint(tiny_gemma4_checkpoint)
    for recipe in ("int8", "float", "mixed48"):
        frugal = memory.predict_peak(ckpt, resolve_recipe(recipe), memory.FRUGAL, True)
        whole = memory.predict_peak(ckpt, resolve_recipe(recipe), memory.IN_PROCESS, True)
        assert frugal.peak_bytes <= whole.peak_bytes
        assert frugal.peak_bytes == max(frugal.stages.values())
    float_stages = memory.predict_peak(ckpt, resolve_recipe("float"), memory.FRUGAL, True).stages
    assert not [stage for stage in float_stages if stage.startswith("quantize")]


def test_auto_takes_the_frugal_path_only_where_it_saves_enough(
    tiny_gemma4_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    int8 = resolve_recipe("int8")
    tiny = read_checkpoint(tiny_gemma4_checkpoint)
    # Small: the same memory either way, so one process (faster). A path asked for is the path taken.
    assert memory.choose_path(tiny, int8, memory.AUTO, True) == memory.predict_peak(
        tiny, int8, memory.IN_PROCESS, True
    )
    assert memory.choose_path(tiny, int8, memory.FRUGAL, True).path == memory.FRUGAL
    # The rule itself, on given predictions: frugal from a saving of FRUGAL_MIN_SAVING on.
    whole_peak = 10 * memory.GB
    for frugal_peak, chosen in ((8.4, memory.FRUGAL), (8.6, memory.IN_PROCESS)):
        peaks = {memory.IN_PROCESS: whole_peak, memory.FRUGAL: int(frugal_peak * memory.GB)}
        monkeypatch.setattr(
            memory,
            "predict_peak",
            lambda ckpt, recipe, path, externalize, peaks=peaks: memory.MemoryPrediction(
                path, peaks[path], {"convert": peaks[path]}
            ),
        )
        assert memory.choose_path(tiny, int8, memory.AUTO, True).path == chosen, frugal_peak


def test_e2b_prediction_scales_with_the_ple_table() -> None:
    """Gemma 4 E2B from its real geometry (meta device, no weights): the 9.4 GB float PLE graph dominates."""
    spec = synthetic_spec("gemma4", "e2b")
    shapes = _tensor_shapes(_build_config(spec))
    ple = next(shape for name, shape in shapes.items() if name.endswith("embed_tokens_per_layer.weight"))
    assert ple == (262144, 35 * 256)
    params = sum(int(__import__("math").prod(s)) for s in shapes.values())
    assert 4.5e9 < params < 4.8e9  # text model: 5.1 B minus the vision and audio towers


def test_available_memory_hook_and_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memory.AVAILABLE_MEMORY_ENV, "1.5G")
    assert memory.available_memory() == (1_500_000_000, memory.AVAILABLE_MEMORY_ENV)
    assert memory.parse_bytes("512M") == 512_000_000
    assert memory.parse_bytes("123") == 123
    with pytest.raises(ExportError):
        memory.parse_bytes("lots")
    monkeypatch.delenv(memory.AVAILABLE_MEMORY_ENV)
    available, source = memory.available_memory()
    assert source in ("MemAvailable", "cgroup") and available > 0


def test_check_fits_refuses_with_both_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    prediction = memory.MemoryPrediction(
        memory.FRUGAL, 3 * memory.GB, {"convert tf_lite_prefill_decode": 3 * memory.GB}
    )
    monkeypatch.setenv(memory.AVAILABLE_MEMORY_ENV, "1G")
    with pytest.raises(ExportError) as info:
        memory.check_fits(prediction, "--ignore-memory-check")
    message = str(info.value)
    assert "~3.0 GB" in message and "1.0 GB available" in message and "--ignore-memory-check" in message
    monkeypatch.setenv(memory.AVAILABLE_MEMORY_ENV, "4G")
    memory.check_fits(prediction, "--ignore-memory-check")  # fits: no error


def test_export_refuses_before_heavy_work(cli, tiny_gemma4_checkpoint: Path, tmp_path: Path) -> None:
    """The CLI: one line naming both figures, a non-zero exit, no BUILD_DIR, and no torch work: the refusal
    comes before the toolchain is imported (torch, tensorflow and litert_torch would fail the run here)."""
    poisoned = tmp_path / "no-toolchain"
    for name in ("torch", "tensorflow", "litert_torch"):
        (poisoned / name).mkdir(parents=True)
        refusal = f"raise ImportError('{name} imported before the refusal')\n"
        (poisoned / name / "__init__.py").write_text(refusal)
    build = tmp_path / "build"
    result = cli.with_env(
        **{memory.AVAILABLE_MEMORY_ENV: "100M", "PYTHONPATH": os.pathsep.join([str(REPO), str(poisoned)])}
    )("export", tiny_gemma4_checkpoint, "-o", build, "--quiet")
    assert result.returncode == ExportError.exit_code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "needs ~" in lines[0] and "0.1 GB available" in lines[0] and "--ignore-memory-check" in lines[0]
    assert not build.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
