"""The one place that drives litert-torch (0.10.0).

We run litert-torch's own export tasks in one process — the same work ``export_hf`` does, with one model
load — in the order its ``export()`` uses for text generation, with three changes:

1. Text-only PLE checkpoints (``gemma4_text``, ``gemma3n_text``) are loaded as the multimodal model *without*
   vision/audio towers, because litert-torch only splits the PLE table on its ``gemma4``/``gemma3n`` paths.
   Gemma 4's multimodal model accepts ``vision_config=None``; Gemma 3n's always builds its towers (~1 B
   parameters, and timm), so a subclass builds only the language model (also used for multimodal Gemma 3n
   checkpoints). Weights are loaded once, with their names mapped ``model.X`` → ``model.language_model.X``.
2. Quantization runs per section kind (a recipe can give the PLE table int4 and the transformer int8),
   instead of one recipe for every graph.
3. Each task reports to our Reporter, and litert-torch's own console tree is silenced.

On the frugal memory path (worker.py) the graphs are split over two processes: ``export_sections`` converts
and quantizes all but the largest graph, then ``run_export`` converts the largest in a fresh process and packs
the bundle, so what the earlier conversions leave allocated never stacks under the largest one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.metadata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgeship
from edgeship.console import Reporter
from edgeship.errors import EdgeshipError, ExportError
from edgeship.exporter.checkpoint import Checkpoint
from edgeship.exporter.manifest import EMBEDDER_KIND, PLE_SECTION_KIND, PREFILL_DECODE_KIND
from edgeship.quantize.recipes import Recipe, Scheme, aeq_recipe

# Text-only checkpoints name weights model.X; the multimodal model holds the same module at
# model.language_model.X (lm_head is tied or at the top level in both).
TEXT_TO_MULTIMODAL_KEYS = {r"^model\.(?!language_model\.)": "model.language_model."}


@dataclass(frozen=True)
class LitertSettings:
    prefill_lengths: tuple[int, ...]
    cache_length: int
    externalize_embedder: bool
    # litert-torch's experimental_lightweight_conversion: constants kept as resources while lowering (no
    # copy per pass), folded by the LiteRT runtime afterwards. Measured: same sections to 0.05%, lower peak.
    lightweight: bool = False
    # Ring-buffer length of the sliding layers' KV cache (litert-torch's sliding_window_ring_buffer_size);
    # None gives sliding layers the full cache_length like the global ones.
    sliding_cache: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "prefill_lengths": list(self.prefill_lengths)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LitertSettings:
        return cls(**{**data, "prefill_lengths": tuple(data["prefill_lengths"])})


@dataclass
class LitertResult:
    bundle: Path  # model.litertlm inside the work dir (stamps not yet normalised)
    section_files: dict[str, Path]  # section kind -> the .tflite that went into the bundle
    tokenizer: Path | None


def default_externalize_embedder(ckpt: Checkpoint) -> bool:
    # Required for the PLE models (litert-torch asserts it); the generic path keeps the embedder inside.
    return ckpt.arch.has_ple


def graph_kinds(ckpt: Checkpoint, settings: LitertSettings) -> list[str]:
    """The TFLite sections an export of ``ckpt`` writes, in litert-torch's task order."""
    kinds = [EMBEDDER_KIND] if settings.externalize_embedder else []
    kinds.append(PREFILL_DECODE_KIND)
    if ckpt.arch.has_ple and ckpt.text_config.get("hidden_size_per_layer_input"):
        kinds.append(PLE_SECTION_KIND)
    return kinds


def _multimodal_config(ckpt: Checkpoint, text_config: Any) -> Any:
    import transformers

    if ckpt.arch.load_as == "gemma4":
        return transformers.Gemma4Config(
            text_config=text_config.to_dict(),
            vision_config=None,
            audio_config=None,
            tie_word_embeddings=getattr(text_config, "tie_word_embeddings", True),
        )
    # Gemma3nConfig always fills default tower configs; they are only configs here, never built.
    return transformers.Gemma3nConfig(text_config=text_config.to_dict())


def _towerless_model_class(load_as: str) -> Any:
    """The multimodal CausalLM class for ``load_as``, built without vision/audio towers."""
    import torch
    import transformers

    if load_as == "gemma4":
        return transformers.Gemma4ForConditionalGeneration  # towers are None when their configs are None
    from transformers.models.gemma3n import modeling_gemma3n as g3n

    class Gemma3nTextOnlyModel(g3n.Gemma3nModel):
        """Gemma3nModel with the language model only: no ~1 B-parameter vision/audio towers."""

        def __init__(self, config: Any) -> None:
            g3n.Gemma3nPreTrainedModel.__init__(self, config)
            self.vocab_size = config.text_config.vocab_size
            self.language_model = transformers.AutoModel.from_config(config.text_config)
            self.vocab_size_per_layer_input = config.text_config.vocab_size_per_layer_input
            self.post_init()

    class Gemma3nTextOnlyForConditionalGeneration(g3n.Gemma3nForConditionalGeneration):
        def __init__(self, config: Any) -> None:
            g3n.Gemma3nPreTrainedModel.__init__(self, config)
            self.model = Gemma3nTextOnlyModel(config)
            self.lm_head = torch.nn.Linear(
                config.text_config.hidden_size, config.text_config.vocab_size, bias=False
            )
            self.post_init()

    return Gemma3nTextOnlyForConditionalGeneration


def _load_towerless(ckpt: Checkpoint) -> Any:
    """litert-torch's ``load_model`` for a PLE checkpoint, as the multimodal model without towers."""
    import torch
    import transformers
    from litert_torch.generative.export_hf.core import export_lib
    from litert_torch.generative.export_hf.model_ext import patches as model_ext_patches

    loaded = transformers.AutoConfig.from_pretrained(str(ckpt.path), dtype=torch.float32)
    # A multimodal checkpoint's tower configs are dropped here; its tower weights are then unused keys.
    text_config = getattr(loaded, "text_config", loaded)
    config = _multimodal_config(ckpt, text_config)
    for cfg in (config, config.text_config):
        if hasattr(cfg, "allow_global_per_layer_attribute_access"):
            cfg.allow_global_per_layer_attribute_access = True
    config._attn_implementation = "lrt_transposed_attention"
    config.text_config.dtype = torch.float32
    model_cls = _towerless_model_class(ckpt.arch.load_as or "")
    with model_ext_patches.get_patch_context(config.model_type):
        model = model_cls.from_pretrained(
            str(ckpt.path), config=config, dtype=torch.float32, key_mapping=TEXT_TO_MULTIMODAL_KEYS
        )
        model = model.to(torch.float32)
    model.generation_config.cache_implementation = "static"
    model.generation_config.do_sample = False
    export_lib.verify_model_compatibility(model, config, config.text_config)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(ckpt.path))
    return export_lib.SourceModelArtifacts(
        model=model, model_config=config, text_model_config=config.text_config, tokenizer=tokenizer
    )


def _load_source(ckpt: Checkpoint, export_config: Any, reporter: Reporter) -> Any:
    from litert_torch.generative.export_hf.core import export_lib

    with reporter.step(f"Load checkpoint ({ckpt.model_type})"):
        if ckpt.arch.adapted:
            return _load_towerless(ckpt)
        return export_lib.load_model(str(ckpt.path), export_config)


def _quantize_file(path: Path, scheme: Scheme, kind: str) -> Path:
    from edgeship.quantize.apply import SchemeDoesNotApply, quantize_graph

    out = path.with_name(path.stem.removesuffix("_quantized") + "_quantized.tflite")
    try:
        out.write_bytes(quantize_graph(path, scheme, kind))
    except SchemeDoesNotApply as exc:
        raise ExportError(exc.message) from exc
    return out


# Where each section's graph lives in litert-torch's ExportedModelArtifacts.
_PER_LAYER_NAME = "per_layer_embedder"


def _section_path(artifacts: Any, kind: str) -> str | None:
    if kind == PREFILL_DECODE_KIND:
        return artifacts.prefill_decode_model_path
    if kind == EMBEDDER_KIND:
        return artifacts.embedder_model_path
    return (artifacts.additional_model_paths or {}).get(_PER_LAYER_NAME)


def _with_section(artifacts: Any, kind: str, path: str) -> Any:
    if kind == PREFILL_DECODE_KIND:
        return dataclasses.replace(artifacts, prefill_decode_model_path=path)
    if kind == EMBEDDER_KIND:
        return dataclasses.replace(artifacts, embedder_model_path=path)
    additional = {**(artifacts.additional_model_paths or {}), _PER_LAYER_NAME: path}
    return dataclasses.replace(artifacts, additional_model_paths=additional)


def quantize_section(path: Path, recipe: Recipe, kind: str, reporter: Reporter) -> Path:
    """Quantize one section's float graph with the scheme its kind gets in ``recipe`` (float: unchanged)."""
    scheme = recipe.scheme_for(kind)
    if scheme.is_float:
        return path
    with reporter.step(f"Quantize {kind} ({scheme.name})"):
        out = _quantize_file(path, scheme, kind)
    gc.collect()
    return out


@contextlib.contextmanager
def _quiet_toolchain() -> Iterator[None]:
    """litert-torch prints a task tree on its own console (our Reporter shows progress instead), and torch
    emits the pytree deprecation warnings export_hf's own run_export_tasks filters."""
    from litert_torch import progress

    previous = progress.config.show_progress
    progress.config.show_progress = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", category=FutureWarning, message=r".*isinstance\(treespec, LeafSpec\)`.*"
            )
            warnings.filterwarnings(
                "ignore", category=FutureWarning, message=r".*treespec\.children_specs`.*"
            )
            yield
    finally:
        progress.config.show_progress = previous


@contextlib.contextmanager
def _canonical_llm_metadata(packer: Any) -> Iterator[None]:
    """Sort the LlmMetadata stop tokens, which litert-torch collects in a Python ``set``.

    Set order follows the per-process string hash seed, so without this two exports of the same checkpoint
    give different LlmMetadataProto bytes. The runtime treats stop tokens as a set: order carries no meaning.
    """
    original = packer.build_llm_metadata

    def build_sorted(*args: Any, **kwargs: Any) -> Any:
        metadata = original(*args, **kwargs)
        ordered = sorted(metadata.stop_tokens, key=lambda token: token.SerializeToString(deterministic=True))
        ordered = [type(token).FromString(token.SerializeToString(deterministic=True)) for token in ordered]
        del metadata.stop_tokens[:]
        metadata.stop_tokens.extend(ordered)
        return metadata

    packer.build_llm_metadata = build_sorted
    try:
        yield
    finally:
        packer.build_llm_metadata = original


def versions() -> dict[str, str]:
    out = {"edgeship": edgeship.__version__}
    for dist in ("litert-torch", "transformers", "torch", "ai-edge-quantizer", "litert-lm-builder"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _task(kind: str) -> tuple[str, Callable[..., Any]]:
    from litert_torch.generative.export_hf.core import export_lib

    return {
        EMBEDDER_KIND: ("Export embedder", export_lib.export_embedder_model),
        PREFILL_DECODE_KIND: ("Export prefill/decode graphs", export_lib.export_text_prefill_decode_model),
        PLE_SECTION_KIND: ("Export per-layer embedder", export_lib.export_additional_models),
    }[kind]


@contextlib.contextmanager
def _toolchain_errors(ckpt: Checkpoint) -> Iterator[None]:
    """litert-torch's own exceptions become one ExportError line; ours, disk full and OOM pass through."""
    try:
        with _quiet_toolchain():
            yield
    except (OSError, MemoryError, EdgeshipError):
        raise  # disk full / out of memory are reported by the pipeline with the path involved
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"litert-torch failed to export {ckpt.model_type} checkpoint:"
            f" {type(exc).__name__}: {message[:300]}"
            " (rerun with --debug for the traceback)"
        ) from exc


# litert-torch 0.10.0 traces a ring-buffer cache only on its composite path (cache.py: the sliding layers'
# update returns (past, new) only when apply_gpu_composites is set; the plain CPU path's mask then misses the
# new token). That master switch also turns on every GPU fusion and a "magic number" cache length unless each
# is set, so they are all set off: the graph keeps our cache length and the plain ops.
_RING_BUFFER_SWITCHES = {
    "apply_gpu_composites": True,
    "fuse_gate_up": False,
    "fuse_qkv": False,
    "use_rope_composite": False,
    "use_swiglu_composite": False,
    "use_qkv_norm_rope_composite": False,
    "use_short_conv_composite": False,
    "use_sdpa_composite": False,
    "use_bool_mask": False,
    "enable_gpu_dynamic_cache": False,
}


def _export_config(ckpt: Checkpoint, work_dir: Path, settings: LitertSettings) -> Any:
    from litert_torch.generative.export_hf.core import exportable_module

    ring = _RING_BUFFER_SWITCHES if settings.sliding_cache else {}
    return exportable_module.ExportableModuleConfig(
        model=str(ckpt.path),
        output_dir=str(work_dir),
        work_dir=str(work_dir),
        keep_temporary_files=True,
        prefill_lengths=list(settings.prefill_lengths),
        cache_length=settings.cache_length,
        quantization_recipe=None,  # applied per section by quantize_section
        externalize_embedder=settings.externalize_embedder,
        bundle_litert_lm=True,
        experimental_lightweight_conversion=settings.lightweight,
        sliding_window_ring_buffer_size=settings.sliding_cache,
        **ring,
    )


def _convert_and_quantize(
    ckpt: Checkpoint,
    work_dir: Path,
    settings: LitertSettings,
    recipe: Recipe,
    kinds: list[str],
    reporter: Reporter,
) -> tuple[Any, Any, Any]:
    """One model load; convert the graphs of ``kinds``, quantize each: (source, config, artifacts)."""
    from litert_torch.generative.export_hf.core import export_lib

    with reporter.step("Check the recipe with ai-edge-quantizer"):
        # An op name ai-edge-quantizer does not know fails here, not after a minute of torch work.
        for kind in (PREFILL_DECODE_KIND, EMBEDDER_KIND, PLE_SECTION_KIND):
            aeq_recipe(recipe.scheme_for(kind))
    export_config = _export_config(ckpt, work_dir, settings)
    source = _load_source(ckpt, export_config, reporter)
    export_config = export_lib.update_export_config(export_config, source)
    artifacts = export_lib.ExportedModelArtifacts()
    for kind in kinds:
        description, task = _task(kind)
        with reporter.step(description):
            artifacts = task(source, export_config, artifacts)
        gc.collect()
    for kind in kinds:
        path = _section_path(artifacts, kind)
        if path:
            artifacts = _with_section(
                artifacts, kind, str(quantize_section(Path(path), recipe, kind, reporter))
            )
    return source, export_config, artifacts


def _package(source: Any, export_config: Any, artifacts: Any, reporter: Reporter) -> LitertResult:
    from litert_torch.generative.export_hf.core import export_lib
    from litert_torch.generative.export_hf.core import litert_lm_builder as packer

    with reporter.step("Package model.litertlm"), _canonical_llm_metadata(packer):
        artifacts = export_lib.export_tokenizer(source, export_config, artifacts)
        artifacts = packer.package_model(source, export_config, artifacts)
    kinds = (EMBEDDER_KIND, PREFILL_DECODE_KIND, PLE_SECTION_KIND)
    sections = {kind: Path(p) for kind in kinds if (p := _section_path(artifacts, kind))}
    tokenizer = Path(artifacts.tokenizer_model_path) if artifacts.tokenizer_model_path else None
    return LitertResult(Path(artifacts.litert_lm_model_path), sections, tokenizer)


def export_sections(
    ckpt: Checkpoint,
    work_dir: Path,
    settings: LitertSettings,
    recipe: Recipe,
    kinds: list[str],
    reporter: Reporter,
) -> dict[str, Path]:
    """Convert and quantize the sections of ``kinds`` (no bundle); the frugal path's first process."""
    with _toolchain_errors(ckpt):
        _, _, artifacts = _convert_and_quantize(ckpt, work_dir, settings, recipe, kinds, reporter)
    missing = [kind for kind in kinds if not _section_path(artifacts, kind)]
    if missing:
        raise ExportError(f"litert-torch wrote no {missing[0]} graph for this {ckpt.model_type} checkpoint")
    return {kind: Path(_section_path(artifacts, kind) or "") for kind in kinds}


def run_export(
    ckpt: Checkpoint,
    work_dir: Path,
    settings: LitertSettings,
    recipe: Recipe,
    reporter: Reporter,
    kinds: list[str] | None = None,
    earlier: dict[str, Path] | None = None,
) -> LitertResult:
    """Export ``ckpt`` into ``work_dir``: one model load, the graphs of ``kinds`` (default: all) converted and
    quantized, then bundled together with the ``earlier`` sections another process made."""
    with reporter.step("Import litert-torch"):
        from litert_torch.generative.export_hf.core import exportable_module  # noqa: F401

    kinds = graph_kinds(ckpt, settings) if kinds is None else kinds
    with _toolchain_errors(ckpt):
        source, export_config, artifacts = _convert_and_quantize(
            ckpt, work_dir, settings, recipe, kinds, reporter
        )
        for kind, path in (earlier or {}).items():
            artifacts = _with_section(artifacts, kind, str(path))
        return _package(source, export_config, artifacts, reporter)
