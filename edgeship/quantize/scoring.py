"""Which positions of which prompts `verify` scores, and the position buckets they fall in.

Each prompt contributes one contiguous segment of positions. The prefix before it is prefilled in chunks of
the exported prefill lengths (as LiteRT-LM does), and each scored position is a decode step. Half of the
positions are scored from the sliding window on (when the model has sliding layers and the cache reaches that
far), on two of the prompts, the other half right after the first prefill chunk of the others, so an error
that only shows once the window slides — sliding layers no longer see the whole prefix — lands in its own
bucket:

- ``inside_window``: position < sliding_window (every layer still sees every earlier token);
- ``beyond_window``: position ≥ sliding_window;
- ``all``: the model has no sliding layers.

KV sharing (Gemma 3n / 4) has no position boundary of its own in these exports: a shared layer reads its
producer's cache at every position, so where it takes over by position is the sliding window. In a
ring-buffer export (sliding caches of the window only, the default) the window is also where the ring
starts to overwrite itself, so ``beyond_window`` is the bucket that scores the wrap-around.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edgeship.errors import UsageError

# Positions past the window need a prefix longer than the window in both the bundle and the reference
# (4 prefill_128 calls per prompt for a 512-token window: three quarters of verify's bundle time on Gemma 3
# 270M), so that half of the positions comes from two prompts, the other half from all the rest.
DEEP_PROMPTS = 2

INSIDE_WINDOW = "inside_window"
BEYOND_WINDOW = "beyond_window"
ALL_POSITIONS = "all"


@dataclass(frozen=True)
class Geometry:
    sliding_window: int | None  # None: no sliding layers
    cache_length: int
    prefill_lengths: tuple[int, ...]
    kv_shared_layers: int = 0

    def bucket(self, position: int) -> str:
        if self.sliding_window is None:
            return ALL_POSITIONS
        return INSIDE_WINDOW if position < self.sliding_window else BEYOND_WINDOW

    def describe(self) -> dict[str, object]:
        return {
            "sliding_window": self.sliding_window,
            "kv_shared_layers": self.kv_shared_layers,
            "kv_share_boundary": None,
            "kv_share_note": (
                "shared layers read their producer's cache at every position: no boundary"
                " other than the sliding window"
                if self.kv_shared_layers
                else None
            ),
        }


@dataclass(frozen=True)
class Segment:
    prompt: int  # index in the prompt set
    chunks: tuple[int, ...]  # prefill calls covering the prefix
    count: int

    @property
    def start(self) -> int:
        return sum(self.chunks)

    @property
    def positions(self) -> range:
        return range(self.start, self.start + self.count)


def prefill_chunks(target: int, lengths: Sequence[int]) -> tuple[int, ...] | None:
    """The fewest prefill calls of the given lengths that sum to exactly ``target`` (None if none do)."""
    best: list[tuple[int, ...] | None] = [()] + [None] * target
    for total in range(1, target + 1):
        for length in sorted(set(lengths), reverse=True):
            previous = best[total - length] if length <= total else None
            if previous is not None and (best[total] is None or len(previous) + 1 < len(best[total] or ())):
                best[total] = (*previous, length)
    return best[target]


def _depth_at_least(target: int, geometry: Geometry) -> tuple[int, ...] | None:
    for depth in range(max(target, 1), geometry.cache_length):
        chunks = prefill_chunks(depth, geometry.prefill_lengths)
        if chunks is not None:
            return chunks
    return None


def _spread(total: int, capacity: Sequence[int]) -> list[int]:
    """``total`` positions over prompts as evenly as their capacity allows (round robin)."""
    counts = [0] * len(capacity)
    remaining = total
    share = math.ceil(total / max(1, sum(1 for c in capacity if c)))
    while remaining and any(c > n for c, n in zip(capacity, counts, strict=True)):
        for i, room in enumerate(capacity):
            take = min(share, room - counts[i], remaining)
            if take > 0:
                counts[i] += take
                remaining -= take
        share = 1
    return counts


def plan_segments(token_counts: Sequence[int], positions: int, geometry: Geometry) -> list[Segment]:
    """Segments adding up to ``positions``: half past the sliding window (when the model has one and the
    cache reaches past it) on up to ``DEEP_PROMPTS`` prompts, the rest right after the first prefill chunk
    of the other prompts."""
    if not geometry.prefill_lengths:
        raise UsageError("the bundle has no prefill signature; verify needs one to build the prefix")
    shallow = _depth_at_least(min(geometry.prefill_lengths), geometry) or ()
    window = geometry.sliding_window
    deep = _depth_at_least(window, geometry) if window and window < geometry.cache_length else None
    rooms = [min(tokens, geometry.cache_length) for tokens in token_counts]
    deep_prompts = (
        [i for i in range(1, len(rooms), 2) if rooms[i] > sum(deep)][:DEEP_PROMPTS]
        if deep is not None
        else []
    )
    depths = [deep if i in deep_prompts else shallow for i in range(len(rooms))]
    capacity = [max(0, room - sum(depth or ())) for room, depth in zip(rooms, depths, strict=True)]
    available = sum(capacity)
    if available < positions:
        raise UsageError(
            f"the prompts give only {available} scorable positions (cache {geometry.cache_length}, prompt"
            f" lengths {list(token_counts)} tokens); lower --positions or give longer prompts"
        )
    deep_capacity = [c if i in deep_prompts else 0 for i, c in enumerate(capacity)]
    counts = _spread(min(positions // 2, sum(deep_capacity)) if deep_prompts else 0, deep_capacity)
    rest = positions - sum(counts)
    shallow_capacity = [0 if i in deep_prompts else c for i, c in enumerate(capacity)]
    more = _spread(min(rest, sum(shallow_capacity)), shallow_capacity)
    counts = [a + b for a, b in zip(counts, more, strict=True)]
    if sum(counts) < positions:  # the shallow prompts ran out: the deep ones take the rest
        extra = _spread(positions - sum(counts), [c - n for c, n in zip(capacity, counts, strict=True)])
        counts = [a + b for a, b in zip(counts, extra, strict=True)]
    return [Segment(i, depths[i] or (), counts[i]) for i in range(len(rooms)) if counts[i]]
