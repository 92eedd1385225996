"""A job's inputs in one deterministic order, each once, with bounded driver memory whatever
their number: pages of URIs are gathered into runs of at most ``run_keys`` (pyarrow string
arrays, about the URI's bytes + 4 per key), each run sorted and de-duplicated; a single run is
yielded from memory, several are spilled to local scratch Parquet and merged.

The order is Arrow's string order, byte-wise on UTF-8, which is also Python's ``str`` order
(code points) and S3's ListObjectsV2 order (UTF-8 binary): the ShardLocator's ``bisect`` on
``str`` places rows by the same order. A listing that arrives already sorted (S3's, within one
prefix listing) gives runs that do not overlap: they are streamed one after the other with no
merge. Any other arrival order (local directories, a manifest's lines) is merged, so shards
never depend on the order in which the store or the manifest lists the inputs.
"""
from __future__ import annotations

import heapq
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Keys per yielded array and per spilled row group.
CHUNK_KEYS = 65_536


def sort_unique(keys: pa.Array) -> pa.Array:
    """Sorted (byte-wise), duplicates dropped."""
    ordered = keys.take(pc.array_sort_indices(keys))
    if len(ordered) < 2:
        return ordered
    keep = pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    return pa.concat_arrays([ordered.slice(0, 1), ordered.slice(1).filter(keep)])


def chunks(keys: pa.Array, size: int = CHUNK_KEYS) -> Iterator[pa.Array]:
    for start in range(0, len(keys), size):
        yield keys.slice(start, size)


def _runs(pages: Iterable[Sequence[str]], run_keys: int) -> Iterator[pa.Array]:
    buffered: list[pa.Array] = []
    count = 0
    for page in pages:
        if not len(page):
            continue
        buffered.append(pa.array(page, pa.string()))
        count += len(page)
        if count >= run_keys:
            yield sort_unique(pa.concat_arrays(buffered))
            buffered, count = [], 0
    if buffered:
        yield sort_unique(pa.concat_arrays(buffered))


def _spilled(path: Path) -> Iterator[pa.Array]:
    with pq.ParquetFile(path) as run:
        for batch in run.iter_batches(batch_size=CHUNK_KEYS, columns=["uri"]):
            yield batch.column(0)


def _merged(paths: list[Path]) -> Iterator[pa.Array]:
    """A k-way merge of sorted runs, duplicates across runs dropped (Python strings, a chunk of
    each run at a time)."""
    streams = [(key for array in _spilled(path) for key in array.to_pylist()) for path in paths]
    out: list[str] = []
    previous = None
    for key in heapq.merge(*streams):
        if key == previous:
            continue
        out.append(key)
        previous = key
        if len(out) == CHUNK_KEYS:
            yield pa.array(out, pa.string())
            out = []
    if out:
        yield pa.array(out, pa.string())


def sorted_unique(pages: Iterable[Sequence[str]], run_keys: int = 1_000_000,
                  scratch_dir: str | None = None) -> Iterator[pa.Array]:
    """Every key of ``pages`` once, in byte-wise order, as string arrays of at most CHUNK_KEYS.
    At most one run (``run_keys`` keys) is held in memory at a time."""
    runs = _runs(pages, run_keys)
    first = next(runs, None)
    if first is None:
        return
    second = next(runs, None)
    if second is None:
        yield from chunks(first)
        return
    with tempfile.TemporaryDirectory(prefix="vipwatch-inputs-", dir=scratch_dir) as scratch:
        paths: list[Path] = []
        bounds: list[tuple[str, str]] = []

        def spill(run: pa.Array) -> None:
            path = Path(scratch, f"run-{len(paths):05d}.parquet")
            pq.write_table(pa.table({"uri": run}), path, row_group_size=CHUNK_KEYS)
            paths.append(path)
            bounds.append((run[0].as_py(), run[-1].as_py()))

        spill(first)
        spill(second)
        first = second = None  # one run in memory at a time
        for run in runs:
            spill(run)
        if all(earlier[1] < later[0] for earlier, later in zip(bounds, bounds[1:])):
            for path in paths:  # already in order (a sorted listing): no merge
                yield from _spilled(path)
        else:
            yield from _merged(paths)
