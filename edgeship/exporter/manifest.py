"""The build-dir contract: its names and numbers, its writer, and THE typed reader of a build.

BUILD_DIR holds ``model.litertlm``, ``manifest.json`` (``edgeship.manifest/1``, docs/contracts.md),
``tokenizer.json`` when the checkpoint has one, and ``export.log``. `edgeship export` writes it (through
``build_manifest``/``write_manifest``); every later stage reads it through ``read_build`` only, which checks
it once with one set of messages and returns frozen dataclasses (``Build``, ``Section``, ``PleFacts``,
``Attention``…) instead of a dict. A later stage that adds to the manifest (verify's ``accuracy``) rewrites
it with ``update_manifest``.

This module imports nothing heavy (no torch, tensorflow or litert): push, profile, report and inspect
import it on light command paths.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeship.errors import InputError
from edgeship.files import SAFE_NAME_RULE, is_safe_name, write_text_atomic
from edgeship.hashing import cached_sha256, file_identity

if TYPE_CHECKING:
    from edgeship.exporter.checkpoint import Checkpoint, ModelFacts
    from edgeship.exporter.litertlm import BundleDigests, BundleHeader
    from edgeship.quantize.recipes import Recipe

# -- the contract's names and numbers ------------------------------------------------------------------------

SCHEMA = "edgeship.manifest/1"
INSPECT_SCHEMA = "edgeship.inspect/1"  # the view `edgeship inspect --json` prints (summarize)
MANIFEST_FILE = "manifest.json"
BUNDLE_FILE = "model.litertlm"
TOKENIZER_FILE = "tokenizer.json"
LOG_FILE = "export.log"  # the toolchain's own output
# .litertlm sections start on 16 KiB boundaries so the runtime can mmap each on its own; push copies
# reused sections on the device in blocks of this size.
ALIGNMENT = 16 * 1024

# Section kinds: a TFLiteModel section's kind is its model_type, any other section's its data type.
TFLITE_DATA_TYPE = "TFLiteModel"
PREFILL_DECODE_KIND = "tf_lite_prefill_decode"
EMBEDDER_KIND = "tf_lite_embedder"
PLE_SECTION_KIND = "tf_lite_per_layer_embedder"  # the Per-Layer-Embedding side table
TFLITE_SECTION_KINDS = (PREFILL_DECODE_KIND, EMBEDDER_KIND, PLE_SECTION_KIND)

# Top-level keys in the order the writer puts them; the ones that describe the bundle's bytes never change
# after export.
MANIFEST_KEYS = (
    "schema",
    "bundle",
    "sections",
    "header",
    "model",
    "export",
    "checkpoint",
    "tokenizer",
    "accuracy",
    "quantized_from",  # only in builds `edgeship quantize` made
)
FIXED_AT_EXPORT = ("schema", "bundle", "sections", "header")
REQUIRED_KEYS = ("bundle", "sections", "model", "export")

# A build dir is data that travels to phones: its names become device paths and device shell words, its
# digests device paths and index lines. read_build holds every such field to these rules.
SHA256_RULE = "64 lowercase hex digits (a sha256)"
_SHA256 = re.compile(r"[0-9a-f]{64}")
KIND_RULE = "letters, digits and _ . - ([A-Za-z0-9_.-]+)"
_KIND = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# Names a bundle's folder uses for itself, in BUILD_DIR and on the device (bundles/<sha>/ and a push's
# attempt folder: push/script.py); a file the manifest names beside the bundle cannot take one.
RESERVED_NAMES = frozenset(
    {
        MANIFEST_FILE,
        BUNDLE_FILE,
        LOG_FILE,
        "sections.txt",  # push's section index (store/index.py)
        "assemble.sh",  # the device script
        "sent",  # the host's end marker
        "tail",  # a resumed push's rest
        "wrote",  # the background writer's exit status
        "alive",  # the push's heartbeat
        "unverified",  # a bundle pushed with --no-verify
    }
)


def is_sha256(value: object) -> bool:
    """True for a digest as the contract writes them: ``SHA256_RULE``."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


class _FieldError(ValueError):
    """A manifest field breaking a rule: read_build names the file and the field in one line."""

    def __init__(self, field_name: str, value: object, rule: str) -> None:
        shown = repr(value)
        super().__init__(f"{field_name} {shown if len(shown) <= 80 else shown[:79] + '…'} {rule}")


# -- the typed view ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleRef:
    """``bundle``: the .litertlm file, its size and digest."""

    file: str
    bytes: int
    sha256: str
    alignment: int | None = None
    version: str | None = None  # the .litertlm container version
    stamps: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Quant:
    """A TFLite section's quantization (``sections[].quant``); ``bits`` None is float."""

    recipe: str | None
    scheme: str | None
    bits: int | None
    granularity: str | None

    @property
    def short(self) -> str:
        """'int8 channelwise', 'int4 blockwise-32', 'float'."""
        if not self.bits:
            return "float"
        return f"int{self.bits} {self.granularity or ''}".strip()


@dataclass(frozen=True)
class Section:
    """One section of the bundle: bytes [offset, end) of the file, of a ``kind``."""

    kind: str
    offset: int
    end: int
    index: int = field(default=0, kw_only=True)
    data_type: str | None = field(default=None, kw_only=True)
    sha256: str = field(default="", kw_only=True)  # of bytes [offset, end)
    quant: Quant | None = field(default=None, kw_only=True)

    @property
    def bytes(self) -> int:
        return self.end - self.offset


@dataclass(frozen=True)
class HeaderRef:
    """``header``: everything before the first section."""

    offset: int
    end: int
    sha256: str


@dataclass(frozen=True)
class PleFacts:
    """``model.ple``: the PLE table; ``row_bytes`` are read per token (layers × dim × bits/8)."""

    vocab: int
    layers: int
    dim: int
    bits: int
    row_bytes: int
    table_bytes: int


@dataclass(frozen=True)
class Attention:
    """``model.attention``: what decides the KV cache's size."""

    layer_types: tuple[str, ...] = ()
    sliding_window: int | None = None
    kv_shared_layers: int | None = None
    head_dim: int | None = None
    global_head_dim: int | None = None
    num_key_value_heads: int | None = None
    num_attention_heads: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """``model``: architecture and parameter counts (core = total − PLE table − token embedding)."""

    arch: str | None = None
    model_type: str | None = None
    text_model_type: str | None = None
    adapted_as: str | None = None
    params_total: int | None = None
    params_core: int | None = None
    ple: PleFacts | None = None
    attention: Attention | None = None


@dataclass(frozen=True)
class CacheLayer:
    """One entry of ``export.kv_cache``: a cache-owning layer's K and V as the exported graph has them."""

    layer: int
    layer_type: str | None
    k_shape: tuple[int, ...]
    v_shape: tuple[int, ...]
    dtype: str
    positions: int  # K's sequence axis: the ring length of a capped sliding layer, else the cache length
    bytes: int  # K + V


@dataclass(frozen=True)
class KvLayout:
    """``export.kv_layout``: ``full`` or ``sliding-ring-buffer``; ``note``: why a ring was not possible."""

    layout: str
    sliding_ring_buffer: int | None
    note: str | None
    bytes: int


@dataclass(frozen=True)
class ExportInfo:
    """``export``: the settings and toolchain versions the bundle was made with."""

    prefill_lengths: tuple[int, ...] = ()
    cache_length: int | None = None
    recipe: str | None = None
    recipe_sections: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    kv_cache: tuple[CacheLayer, ...] = ()  # empty for builds made before the field existed
    kv_layout: KvLayout | None = None


@dataclass(frozen=True)
class CheckpointRef:
    """``checkpoint``: where the weights came from; ``weights_sha256`` = hashing.sha256_files(files)."""

    path: str
    weights_sha256: str
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Build:
    """A checked build dir. ``manifest`` is the JSON as read, for views that echo it unchanged."""

    build_dir: Path
    bundle: BundleRef
    sections: tuple[Section, ...]
    header: HeaderRef | None
    model: ModelInfo
    export: ExportInfo
    checkpoint: CheckpointRef | None
    tokenizer_file: str | None  # beside the bundle; None when the checkpoint had no tokenizer.json
    accuracy: Mapping[str, Any] | None
    manifest_sha256: str  # of the manifest.json file (profile.json records it)
    manifest: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def manifest_path(self) -> Path:
        return self.build_dir / MANIFEST_FILE

    @property
    def bundle_path(self) -> Path:
        return self.build_dir / self.bundle.file

    @property
    def tokenizer_path(self) -> Path | None:
        return self.build_dir / self.tokenizer_file if self.tokenizer_file else None

    @property
    def sha256(self) -> str:
        return self.bundle.sha256

    @property
    def sha12(self) -> str:
        """The short digest that names a build's folders (RUNS_DIR/<serial>/<sha12>/)."""
        return self.bundle.sha256[:12]

    @property
    def bytes(self) -> int:
        return self.bundle.bytes

    def section(self, kind: str) -> Section | None:
        """The first section of ``kind``, or None."""
        return next((section for section in self.sections if section.kind == kind), None)

    @property
    def ple_section(self) -> Section | None:
        return self.section(PLE_SECTION_KIND)


# -- the reader ----------------------------------------------------------------------------------------------


def read_build(build_dir: str | Path, *, verify: bool = False) -> Build:
    """Read and check BUILD_DIR; InputError (one line: what is wrong, what to do) when it is not a build.

    Always checked: the manifest's schema and fields, that the bundle exists with the manifest's size, that
    sections stay inside it without overlapping, that the tokenizer it names exists. With ``verify`` the
    bundle's sha256 is checked too (seconds per GB, once per file: see ``verify_bundle``).

    A build dir is data, never code, and what it names stays on the host unless it is inside the build
    dir: every digest is ``SHA256_RULE``, every section kind ``KIND_RULE``, the bundle and tokenizer files
    are names beside manifest.json (``SAFE_NAME_RULE``, not one of ``RESERVED_NAMES``) that resolve inside
    BUILD_DIR (a symlink out is refused). All of it is checked here, before any device is touched.
    """
    build_dir = Path(build_dir)
    manifest_path = build_dir / MANIFEST_FILE
    if not build_dir.is_dir():
        raise InputError(f"{build_dir} is not a folder; pass the BUILD_DIR written by `edgeship export`")
    if not manifest_path.is_file():
        raise InputError(
            f"{build_dir} has no {MANIFEST_FILE}; pass the BUILD_DIR written by `edgeship export`"
        )
    try:
        data = manifest_path.read_bytes()
        manifest = json.loads(data)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{manifest_path} is not valid JSON: {exc}".splitlines()[0]) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise InputError(
            f"{manifest_path} has schema {found!r}, expected {SCHEMA!r}; is it an edgeship build?"
        )
    for key in REQUIRED_KEYS:
        if not isinstance(manifest.get(key), list if key == "sections" else dict):
            raise InputError(f"{manifest_path} lacks '{key}'; re-export the build with `edgeship export`")
    try:
        build = Build(
            build_dir=build_dir,
            bundle=_bundle(manifest["bundle"]),
            sections=tuple(_section(entry, position) for position, entry in enumerate(manifest["sections"])),
            header=_header(manifest.get("header")),
            model=_model(manifest["model"]),
            export=_export(manifest["export"]),
            checkpoint=_checkpoint(manifest.get("checkpoint")),
            tokenizer_file=_tokenizer(manifest.get("tokenizer")),
            accuracy=manifest.get("accuracy"),
            manifest_sha256=hashlib.sha256(data).hexdigest(),
            manifest=manifest,
        )
    except _FieldError as exc:
        raise InputError(f"{manifest_path}: {exc}; re-export the build with `edgeship export`") from None
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"field {exc}" if isinstance(exc, KeyError) else f"a malformed field ({exc})"
        raise InputError(
            f"{manifest_path} has {detail}; re-export the build with `edgeship export`"
        ) from None
    _check_files(build)
    if verify:
        verify_bundle(build)
    return build


def _sha(value: object, field_name: str) -> str:
    if not is_sha256(value):
        raise _FieldError(field_name, value, f"must be {SHA256_RULE}")
    return str(value)


def _file_name(value: object, field_name: str, own: str | None = None) -> str:
    """A file beside manifest.json: one safe path component, not a name the bundle folder reserves."""
    if not is_safe_name(value):
        raise _FieldError(field_name, value, f"must be {SAFE_NAME_RULE}: a file beside manifest.json")
    if value in RESERVED_NAMES and value != own:
        raise _FieldError(field_name, value, "is a reserved name (one of the bundle folder's own files)")
    return str(value)


def _bundle(entry: Mapping[str, Any]) -> BundleRef:
    return BundleRef(
        file=_file_name(entry["file"], "bundle.file", own=BUNDLE_FILE),
        bytes=int(entry["bytes"]),
        sha256=_sha(entry["sha256"], "bundle.sha256"),
        alignment=_int_or_none(entry.get("alignment")),
        version=entry.get("version"),
        stamps=dict(entry.get("stamps") or {}),
    )


def _section(entry: Mapping[str, Any], position: int) -> Section:
    quant = entry.get("quant")
    kind = entry.get("kind", "section")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise _FieldError(f"sections[{position}].kind", kind, f"must be {KIND_RULE}")
    return Section(
        kind=kind,
        offset=int(entry["offset"]),
        end=int(entry["end"]),
        index=int(entry.get("index", position)),
        data_type=entry.get("data_type"),
        sha256=_sha(entry["sha256"], f"sections[{position}].sha256"),
        quant=Quant(
            recipe=quant.get("recipe"),
            scheme=quant.get("scheme"),
            bits=_int_or_none(quant.get("bits")),
            granularity=quant.get("granularity"),
        )
        if isinstance(quant, dict)
        else None,
    )


def _header(entry: Mapping[str, Any] | None) -> HeaderRef | None:
    if not entry:
        return None
    return HeaderRef(int(entry["offset"]), int(entry["end"]), _sha(entry["sha256"], "header.sha256"))


def _model(entry: Mapping[str, Any]) -> ModelInfo:
    ple = entry.get("ple")
    attention = entry.get("attention")
    return ModelInfo(
        arch=entry.get("arch"),
        model_type=entry.get("model_type"),
        text_model_type=entry.get("text_model_type"),
        adapted_as=entry.get("adapted_as"),
        params_total=_int_or_none(entry.get("params_total")),
        params_core=_int_or_none(entry.get("params_core")),
        ple=PleFacts(**{name: int(ple[name]) for name in PleFacts.__dataclass_fields__}) if ple else None,
        attention=Attention(
            layer_types=tuple(attention.get("layer_types") or ()),
            **{
                name: _int_or_none(attention.get(name))
                for name in Attention.__dataclass_fields__
                if name != "layer_types"
            },
        )
        if attention
        else None,
    )


def _export(entry: Mapping[str, Any]) -> ExportInfo:
    return ExportInfo(
        prefill_lengths=tuple(int(length) for length in entry.get("prefill_lengths") or ()),
        cache_length=_int_or_none(entry.get("cache_length")),
        recipe=entry.get("recipe"),
        recipe_sections=dict(entry.get("recipe_sections") or {}),
        versions=dict(entry.get("versions") or {}),
        kv_cache=tuple(_cache_layer(layer) for layer in entry.get("kv_cache") or ()),
        kv_layout=_kv_layout(entry.get("kv_layout")),
    )


def _cache_layer(entry: Mapping[str, Any]) -> CacheLayer:
    k_shape = tuple(int(d) for d in entry["k_shape"])
    return CacheLayer(
        layer=int(entry["layer"]),
        layer_type=entry.get("layer_type"),
        k_shape=k_shape,
        v_shape=tuple(int(d) for d in entry["v_shape"]),
        dtype=str(entry.get("dtype", "float32")),
        positions=int(entry.get("positions", k_shape[2] if len(k_shape) > 2 else 0)),
        bytes=int(entry.get("bytes", 0)),
    )


def _kv_layout(entry: Mapping[str, Any] | None) -> KvLayout | None:
    if not entry:
        return None
    return KvLayout(
        layout=str(entry["layout"]),
        sliding_ring_buffer=_int_or_none(entry.get("sliding_ring_buffer")),
        note=entry.get("note"),
        bytes=int(entry.get("bytes", 0)),
    )


def _checkpoint(entry: Mapping[str, Any] | None) -> CheckpointRef | None:
    if not entry:
        return None
    return CheckpointRef(
        str(entry["path"]),
        _sha(entry["weights_sha256"], "checkpoint.weights_sha256"),
        tuple(entry.get("files") or ()),
    )


def _tokenizer(entry: Any) -> str | None:
    if not isinstance(entry, dict) or not entry.get("file"):
        return None
    return _file_name(entry["file"], "tokenizer.file")


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _inside_build_dir(build: Build, path: Path, field_name: str) -> None:
    """A file the manifest names must be in BUILD_DIR itself: a symlink out of it would send a host file."""
    if not path.is_symlink():
        return
    target = path.resolve()
    if target.parent != build.build_dir.resolve():
        raise InputError(
            f"{path} ({field_name} of {build.manifest_path}) is a symlink to {target}, outside the "
            "build dir; copy the file into the build dir"
        )


def _check_files(build: Build) -> None:
    where = f"(named by {build.manifest_path})"
    _inside_build_dir(build, build.bundle_path, "bundle.file")
    if build.tokenizer_path is not None:
        if build.tokenizer_file == build.bundle.file:
            raise InputError(
                f"{build.manifest_path}: tokenizer.file is the bundle itself; re-export the build"
            )
        _inside_build_dir(build, build.tokenizer_path, "tokenizer.file")
    if not build.bundle_path.is_file():
        raise InputError(f"{build.bundle_path} is missing {where}; the build dir is incomplete")
    actual = build.bundle_path.stat().st_size
    if actual != build.bytes:
        raise InputError(
            f"{build.bundle_path} has {actual} bytes but its manifest says {build.bytes}; "
            "rebuild or re-export"
        )
    previous_end = 0
    for section in sorted(build.sections, key=lambda s: s.offset):
        if not (0 <= section.offset <= section.end <= build.bytes) or section.offset < previous_end:
            raise InputError(
                f"{build.manifest_path}: section {section.kind} [{section.offset}, {section.end}) "
                f"overlaps another or leaves the {build.bytes}-byte bundle; re-export"
            )
        previous_end = section.end
    tokenizer = build.tokenizer_path
    if tokenizer is not None and not tokenizer.is_file():
        raise InputError(f"{tokenizer} is missing {where}; the build dir is incomplete")


# Bundles verified in this process, by (file identity, digest): `profile` pushes to N devices from N threads,
# and a GB bundle must not be hashed N times even where the on-disk record cannot be written.
_VERIFIED: set[tuple[str, str]] = set()
_VERIFIED_LOCK = threading.Lock()


def verify_bundle(build: Build) -> None:
    """The bundle's sha256 against its manifest: a bundle changed after export is refused before use.

    A digest recorded for this very file (export records it; so does the first check) is not recomputed:
    see edgeship.hashing.known_sha256.
    """
    path, expected = build.bundle_path, build.sha256
    key = (file_identity(path), expected)
    with _VERIFIED_LOCK:
        if key in _VERIFIED:
            return
        actual = cached_sha256(path)
        if actual == expected:
            _VERIFIED.add(key)
            return
    raise InputError(
        f"{path} sha256 {actual[:12]}… does not match its manifest "
        f"({expected[:12]}…); the bundle changed after export — re-export"
    )


# -- the writer ----------------------------------------------------------------------------------------------


def section_entries(header: BundleHeader, digests: BundleDigests, recipe: Recipe) -> list[dict[str, Any]]:
    """One entry per section with its byte range and the sha256 of exactly those bytes."""
    entries = []
    for section, sha256 in zip(header.sections, digests.sections, strict=True):
        quant = (
            recipe.scheme_for(section.kind).describe(recipe.name)
            if section.data_type == TFLITE_DATA_TYPE
            else None
        )
        entries.append(
            {
                "index": section.index,
                "kind": section.kind,
                "data_type": section.data_type,
                "offset": section.offset,
                "end": section.end,
                "bytes": section.bytes,
                "sha256": sha256,
                "quant": quant,
            }
        )
    return entries


def build_manifest(
    *,
    bundle: Path,
    header: BundleHeader,
    digests: BundleDigests,
    ckpt: Checkpoint,
    weights_sha256: str,
    facts: ModelFacts,
    recipe: Recipe,
    prefill_lengths: list[int],
    cache_length: int,
    versions: dict[str, str],
    tokenizer_file: str | None,
    stamps: dict[str, str],
    kv_cache: list[dict[str, Any]] | None = None,
    kv_layout: dict[str, Any] | None = None,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    first = min((s.offset for s in header.sections), default=bundle.stat().st_size)
    return {
        "schema": SCHEMA,
        "bundle": {
            "file": BUNDLE_FILE,
            "bytes": bundle.stat().st_size,
            "sha256": digests.bundle,
            "alignment": ALIGNMENT,
            "version": ".".join(str(v) for v in header.version),
            "stamps": stamps,
        },
        "sections": section_entries(header, digests, recipe),
        "header": {"offset": 0, "end": first, "sha256": digests.header},
        "model": {
            "arch": ckpt.arch.family,
            "model_type": ckpt.model_type,
            "text_model_type": facts.text_model_type,
            "adapted_as": ckpt.arch.load_as,
            "params_total": facts.params_total,
            "params_core": facts.params_core,
            "ple": facts.ple,
            "attention": facts.attention,
        },
        "export": {
            "prefill_lengths": prefill_lengths,
            "cache_length": cache_length,
            "recipe": recipe.name,
            "recipe_sections": recipe.to_dict(),
            "kv_cache": kv_cache,
            "kv_layout": kv_layout,
            "memory": memory,
            "versions": versions,
        },
        "checkpoint": {
            "path": str(ckpt.path.resolve()),
            "weights_sha256": weights_sha256,
            "files": ckpt.weight_files,
        },
        "tokenizer": {"file": tokenizer_file} if tokenizer_file else None,
        "accuracy": None,
    }


def write_manifest(build_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """Write manifest.json atomically (a temporary file renamed over it): a reader never sees half of it."""
    return write_text_atomic(
        Path(build_dir) / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n", mode=0o644
    )


def update_manifest(build_dir: str | Path, changes: Mapping[str, Any]) -> Build:
    """Replace top-level keys a later stage owns (verify: ``accuracy``) and rewrite manifest.json atomically.

    The keys that describe the bundle's bytes (``FIXED_AT_EXPORT``) cannot change: a different bundle is a
    new export. Returns the build as read back.
    """
    build = read_build(build_dir)
    for key in changes:
        if key not in MANIFEST_KEYS or key in FIXED_AT_EXPORT:
            raise ValueError(f"manifest key {key!r} cannot be updated after export")
    write_manifest(build.build_dir, {**build.manifest, **changes})
    return read_build(build.build_dir)


# -- the inspect view ----------------------------------------------------------------------------------------


def summarize(build: Build) -> dict[str, Any]:
    """The view `inspect` and `export --json` print (``edgeship.inspect/1``): sections with their share of
    the bundle, PLE facts with the PLE section's bytes, params core share."""
    total = build.bytes or 1
    manifest = build.manifest
    sections = [
        {
            "index": section.index,
            "kind": section.kind,
            "data_type": section.data_type,
            "offset": section.offset,
            "bytes": section.bytes,
            "share": section.bytes / total,
            "quant": entry.get("quant"),
            "quant_short": section.quant.short if section.quant else "-",
            "sha256": section.sha256,
        }
        for section, entry in zip(build.sections, manifest["sections"], strict=True)
    ]
    model = dict(manifest["model"])
    params_total, params_core = build.model.params_total, build.model.params_core
    model["core_share"] = params_core / params_total if params_total and params_core is not None else 0.0
    ple = dict(model["ple"]) if model.get("ple") else None
    if ple:
        ple_section = build.ple_section
        ple["section_bytes"] = ple_section.bytes if ple_section else None
        ple["section_share"] = ple_section.bytes / total if ple_section else None
    model["ple"] = ple
    return {
        "schema": INSPECT_SCHEMA,
        "build_dir": str(build.build_dir),
        "bundle": manifest["bundle"],
        "recipe": build.export.recipe,
        "sections": sections,
        "model": model,
    }
