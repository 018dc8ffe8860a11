"""Which positions of which prompts `verify` scores, and the position buckets they fall in.

Each prompt contributes one contiguous segment of positions. The prefix before it is prefilled in chunks of
the exported prefill lengths (as LiteRT-LM does), and each scored position is a decode step. Half of the
prompts are scored right after their first prefill chunk, the other half from the sliding window on
(when the model has sliding layers and the cache reaches that far), so an error that only shows once the
window slides — sliding layers no longer see the whole prefix — lands in its own bucket:

- ``inside_window``: position < sliding_window (every layer still sees every earlier token);
- ``beyond_window``: position ≥ sliding_window;
- ``all``: the model has no sliding layers.

KV sharing (Gemma 3n / 4) has no position boundary of its own in these exports: a shared layer reads its
producer's full-length cache at every position (litert-torch keeps sliding caches at the cache length unless
a ring buffer is exported, which verify refuses), so where it takes over by position is the sliding window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edgeship.errors import UsageError

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
                "shared layers read their producer's full-length cache at every position: no boundary"
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


def plan_segments(token_counts: Sequence[int], positions: int, geometry: Geometry) -> list[Segment]:
    """Segments adding up to ``positions`` scored positions, spread evenly over the prompts."""
    if not geometry.prefill_lengths:
        raise UsageError("the bundle has no prefill signature; verify needs one to build the prefix")
    shallow = _depth_at_least(min(geometry.prefill_lengths), geometry)
    window = geometry.sliding_window
    deep = _depth_at_least(window, geometry) if window and window < geometry.cache_length else None
    depths = []
    for i, tokens in enumerate(token_counts):
        room = min(tokens, geometry.cache_length)
        wanted = deep if (i % 2 == 1 and deep is not None and room > sum(deep)) else shallow
        depths.append(wanted if wanted is not None and room > sum(wanted) else None)
    capacity = [
        min(tokens, geometry.cache_length) - sum(d) if d is not None else 0
        for tokens, d in zip(token_counts, depths, strict=True)
    ]
    available = sum(capacity)
    if available < positions:
        raise UsageError(
            f"the prompts give only {available} scorable positions (cache {geometry.cache_length}, prompt"
            f" lengths {list(token_counts)} tokens); lower --positions or give longer prompts"
        )
    counts = [0] * len(token_counts)
    share = math.ceil(positions / max(1, sum(1 for c in capacity if c)))
    remaining = positions
    while remaining:
        for i, room in enumerate(capacity):
            take = min(share, room - counts[i], remaining)
            if take > 0:
                counts[i] += take
                remaining -= take
        share = 1
    return [
        Segment(i, depths[i] or (), counts[i]) for i in range(len(token_counts)) if counts[i] and depths[i]
    ]
