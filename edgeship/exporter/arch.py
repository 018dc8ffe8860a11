"""The architectures edgeship exports, and how a text-only checkpoint is adapted to get the PLE split.

litert-torch 0.10.0 splits the Per-Layer-Embedding table into its own ``tf_lite_per_layer_embedder`` section
only on its ``gemma4`` / ``gemma3n`` (multimodal) paths. A text-only Gemma 4 checkpoint (``gemma4_text``)
fails to export there, and a text-only Gemma 3n one exports with no PLE section. So those checkpoints (and
multimodal Gemma 3n, whose towers need timm and ~1 B parameters) are loaded as the multimodal model *without*
vision/audio towers (see ``litert.py``); ``load_as`` in this table says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeship.errors import InputError


@dataclass(frozen=True)
class ArchSpec:
    """One supported ``model_type`` of config.json."""

    model_type: str
    family: str  # gemma4 | gemma3n | gemma3 | passthrough
    text_only: bool
    has_ple: bool
    # The multimodal model_type litert-torch needs to split the PLE table; None when loaded as is.
    load_as: str | None = None
    tested: bool = True

    @property
    def adapted(self) -> bool:
        return self.load_as is not None


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec
    for spec in (
        ArchSpec("gemma4", "gemma4", text_only=False, has_ple=True),
        ArchSpec("gemma4_text", "gemma4", text_only=True, has_ple=True, load_as="gemma4"),
        # Gemma 3n's multimodal model always builds its towers (timm vision, ~1 B params): load it tower-less.
        ArchSpec("gemma3n", "gemma3n", text_only=False, has_ple=True, load_as="gemma3n", tested=False),
        ArchSpec("gemma3n_text", "gemma3n", text_only=True, has_ple=True, load_as="gemma3n"),
        ArchSpec("gemma3_text", "gemma3", text_only=True, has_ple=False),
        ArchSpec("gemma3", "gemma3", text_only=False, has_ple=False, tested=False),
        # Decoder LMs litert-torch's generic export path handles; passed through untested.
        ArchSpec("qwen3", "passthrough", text_only=True, has_ple=False, tested=False),
        ArchSpec("qwen2", "passthrough", text_only=True, has_ple=False, tested=False),
        ArchSpec("llama", "passthrough", text_only=True, has_ple=False, tested=False),
    )
}

# `edgeship testing make-checkpoint --arch` names → config.json model_type.
SYNTHETIC_ARCHS: dict[str, str] = {
    "gemma4": "gemma4",
    "gemma4-text": "gemma4_text",
    "gemma3n-text": "gemma3n_text",
    "gemma3": "gemma3_text",
}


def supported_summary() -> str:
    """One line for errors and --help: tested types first, then pass-through ones."""
    tested = [t for t, s in ARCHITECTURES.items() if s.tested]
    other = [t for t, s in ARCHITECTURES.items() if not s.tested]
    return f"{', '.join(tested)} (tested); {', '.join(other)} (passed to litert-torch untested)"


def arch_for(model_type: str | None) -> ArchSpec:
    if not model_type:
        raise InputError("config.json has no model_type; is this a Hugging Face transformers checkpoint?")
    spec = ARCHITECTURES.get(model_type)
    if spec is None:
        raise InputError(
            f"unsupported architecture '{model_type}'; supported model_type: {supported_summary()}"
        )
    return spec
