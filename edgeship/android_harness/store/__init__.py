"""The on-device store under the device root: its layout, content-addressed files, gc, the index beside
each bundle, and the transfer plan (what a push sends and what it copies on the device).
"""

from edgeship.android_harness.store.gc import GcResult, collect_garbage
from edgeship.android_harness.store.index import (
    INDEX_NAME,
    DeviceIndex,
    SectionSource,
    SideFile,
    index_text,
    parse_index_line,
    side_files,
)
from edgeship.android_harness.store.layout import (
    STAGING_IDLE_LIMIT_S,
    STORE_MARKER,
    DeviceStore,
    check_name,
    check_sha,
    is_run_id,
)
from edgeship.android_harness.store.transfer import (
    BLOCK,
    PARTIAL_PREFIX,
    PIECE_GRID,
    BlockCopy,
    Piece,
    TransferPlan,
    cut_pieces,
    partial_name,
    plan_transfer,
)

__all__ = [
    "BLOCK",
    "INDEX_NAME",
    "PARTIAL_PREFIX",
    "PIECE_GRID",
    "STAGING_IDLE_LIMIT_S",
    "STORE_MARKER",
    "BlockCopy",
    "DeviceIndex",
    "DeviceStore",
    "GcResult",
    "Piece",
    "SectionSource",
    "SideFile",
    "TransferPlan",
    "check_name",
    "check_sha",
    "collect_garbage",
    "cut_pieces",
    "index_text",
    "is_run_id",
    "parse_index_line",
    "partial_name",
    "plan_transfer",
    "side_files",
]
