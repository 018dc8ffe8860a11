"""The .litertlm container: read its header and section offsets, and make it byte-reproducible.

Layout (litert_lm_builder 0.18): ``LITERTLM`` magic; major/minor/patch as little-endian uint32; padding
to byte 24; the end offset of the header as uint64 at byte 24; a flatbuffer ``LiteRTLMMetaData`` from byte
32 (system metadata key/values, and one SectionObject per section with its data type, items and
[begin, end) offsets); then the sections, each on a 16 KiB boundary so the runtime can mmap them one by one.

Only the header is read — a multi-GB bundle is never loaded. The builder stamps a random ``uuid`` and the
wall-clock ``creation_timestamp`` into system metadata; ``normalise_stamps`` overwrites both in place with
values derived from the inputs (same string lengths, so no offset moves).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import InputError

MAGIC = b"LITERTLM"
HEADER_END_AT = 24
HEADER_BEGIN = 32
MAX_HEADER_BYTES = 64 * 1024 * 1024
# Fixed stamp for reproducible bundles: the first second of the LiteRT-LM era is as good as any.
REPRODUCIBLE_TIMESTAMP = "2025-01-01T00:00:00.000000+00:00"


@dataclass(frozen=True)
class Section:
    index: int
    data_type: str  # TFLiteModel, LlmMetadataProto, HF_Tokenizer_Zlib...
    model_type: str | None  # item "model_type" of TFLiteModel sections (tf_lite_per_layer_embedder...)
    offset: int
    end: int
    items: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.model_type or self.data_type

    @property
    def bytes(self) -> int:
        return self.end - self.offset


@dataclass(frozen=True)
class BundleHeader:
    version: tuple[int, int, int]
    header_end: int
    system_metadata: dict[str, Any]
    sections: list[Section]
    # Where the uuid / creation_timestamp strings sit in the file: {key: (offset, length)}.
    stamp_locations: dict[str, tuple[int, int]]


def _schema() -> Any:
    try:
        from litert_lm_builder import litertlm_header_schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InputError(
            "reading .litertlm headers needs litert-lm-builder: pip install 'edgeship[export]'"
        ) from exc
    return schema


def _kv_value(schema: Any, kvp: Any) -> tuple[Any, tuple[int, int] | None]:
    """Value of a KeyValuePair, and for strings the (buffer position, length) of the bytes."""
    table = kvp.Value()
    if table is None:
        return None, None
    value_type = kvp.ValueType()
    if value_type == schema.VData.StringValue:
        value = schema.StringValue()
        value.Init(table.Bytes, table.Pos)
        field_offset = value._tab.Offset(4)
        if not field_offset:
            return None, None
        where = value._tab.Pos + field_offset
        start = where + struct.unpack_from("<I", table.Bytes, where)[0]
        length = struct.unpack_from("<I", table.Bytes, start)[0]
        raw = bytes(table.Bytes[start + 4 : start + 4 + length])
        return raw.decode("utf-8", "replace"), (start + 4, length)
    names = {v: k for k, v in schema.VData.__dict__.items() if not k.startswith("_")}
    type_name = names.get(value_type)
    cls = getattr(schema, type_name, None) if type_name else None
    if cls is None:
        return None, None
    value = cls()
    value.Init(table.Bytes, table.Pos)
    return value.Value(), None


def read_header(path: str | Path) -> BundleHeader:
    """Parse the header of a .litertlm file (reads only the header bytes)."""
    path = Path(path)
    schema = _schema()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(HEADER_BEGIN)
        if len(head) < HEADER_BEGIN or head[:8] != MAGIC:
            raise InputError(f"{path} is not a .litertlm bundle (bad magic); was the export complete?")
        version = struct.unpack_from("<III", head, 8)
        (header_end,) = struct.unpack_from("<Q", head, HEADER_END_AT)
        if not HEADER_BEGIN < header_end <= min(size, HEADER_BEGIN + MAX_HEADER_BYTES):
            raise InputError(f"{path} has a corrupt header (header end {header_end}, file {size} bytes)")
        data = handle.read(header_end - HEADER_BEGIN)
    meta = schema.LiteRTLMMetaData.GetRootAs(data, 0)
    system: dict[str, Any] = {}
    stamps: dict[str, tuple[int, int]] = {}
    sysmeta = meta.SystemMetadata()
    for i in range(sysmeta.EntriesLength() if sysmeta else 0):
        kvp = sysmeta.Entries(i)
        key = kvp.Key().decode()
        value, location = _kv_value(schema, kvp)
        system[key] = value
        if location is not None and key in ("uuid", "creation_timestamp"):
            stamps[key] = (HEADER_BEGIN + location[0], location[1])
    type_names = {v: k for k, v in schema.AnySectionDataType.__dict__.items() if not k.startswith("_")}
    sections = []
    secmeta = meta.SectionMetadata()
    for i in range(secmeta.ObjectsLength() if secmeta else 0):
        obj = secmeta.Objects(i)
        items = {}
        for j in range(obj.ItemsLength()):
            kvp = obj.Items(j)
            items[kvp.Key().decode()] = _kv_value(schema, kvp)[0]
        begin, end = obj.BeginOffset(), obj.EndOffset()
        if not header_end <= begin <= end <= size:
            raise InputError(
                f"{path}: section {i} [{begin}, {end}) lies outside the file ({size} bytes); truncated?"
            )
        model_type = items.get("model_type")
        sections.append(
            Section(i, type_names.get(obj.DataType(), str(obj.DataType())), model_type, begin, end, items)
        )
    return BundleHeader(tuple(version), header_end, system, sections, stamps)


def _timestamp_like(original_length: int) -> str:
    """The reproducible timestamp in the same string length as the builder's isoformat() value."""
    candidates = [REPRODUCIBLE_TIMESTAMP, REPRODUCIBLE_TIMESTAMP.replace(".000000", "")]
    for candidate in candidates:
        if len(candidate) == original_length:
            return candidate
    raise InputError(f"unexpected creation_timestamp length {original_length} in the bundle header")


def normalise_stamps(path: str | Path, seed: str) -> dict[str, str]:
    """Overwrite the builder's uuid and creation_timestamp in place; ``seed`` makes the uuid (uuid5)."""
    header = read_header(path)
    replacements = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgeship:{seed}")),
    }
    if "creation_timestamp" in header.stamp_locations:
        replacements["creation_timestamp"] = _timestamp_like(header.stamp_locations["creation_timestamp"][1])
    written = {}
    with open(path, "r+b") as handle:
        for key, value in replacements.items():
            if key not in header.stamp_locations:
                continue
            offset, length = header.stamp_locations[key]
            encoded = value.encode()
            if len(encoded) != length:
                raise InputError(
                    f"cannot normalise {key}: builder wrote {length} bytes, replacement has {len(encoded)}"
                )
            handle.seek(offset)
            handle.write(encoded)
            written[key] = value
    return written


@dataclass(frozen=True)
class BundleDigests:
    bundle: str
    header: str  # bytes [0, first section offset)
    sections: list[str]  # per section, bytes [offset, end)


def digest_bundle(
    path: str | Path, header: BundleHeader, chunk_bytes: int = 4 * 1024 * 1024
) -> BundleDigests:
    """sha256 of the whole bundle, its header and every section in ONE sequential read.

    A PLE-heavy bundle is mostly one large section; reading it once instead of twice keeps `export` close to
    the raw export_hf time.
    """
    size = Path(path).stat().st_size
    first = min((s.offset for s in header.sections), default=size)
    ranges = [(0, first)] + [(s.offset, s.end) for s in header.sections]
    whole = hashlib.sha256()
    parts = [hashlib.sha256() for _ in ranges]
    position = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            whole.update(chunk)
            end = position + len(chunk)
            view = memoryview(chunk)
            for digest, (begin, stop) in zip(parts, ranges, strict=True):
                lo, hi = max(begin, position), min(stop, end)
                if lo < hi:
                    digest.update(view[lo - position : hi - position])
            position = end
    return BundleDigests(whole.hexdigest(), parts[0].hexdigest(), [d.hexdigest() for d in parts[1:]])
