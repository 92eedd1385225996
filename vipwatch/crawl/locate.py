"""Which shard an output row belongs to, from its ``image_uri`` alone: shards are contiguous ranges
of the sorted inputs, so the first input of each shard is all a worker needs (one string per
shard, not one per input)."""
from __future__ import annotations

from bisect import bisect_right


class ShardLocator:
    def __init__(self, starts: list[str], names: list[str]):
        if list(starts) != sorted(starts) or len(starts) != len(names):
            raise ValueError("shard starts must be sorted, one per shard name")
        self.starts = list(starts)
        self.names = list(names)

    def position(self, uri: str) -> int:
        """Index into ``names`` of the shard whose range holds ``uri`` (-1: before the first)."""
        return bisect_right(self.starts, uri) - 1

    def name_of(self, uri: str) -> str:
        position = self.position(uri)
        if position < 0:
            raise ValueError(f"{uri} sorts before every shard of this job")
        return self.names[position]
