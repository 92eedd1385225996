"""A job's inputs sorted and de-duplicated in bounded memory (vipwatch/crawl/ordering.py)."""
import random

import pyarrow as pa

from vipwatch.crawl.ordering import CHUNK_KEYS, sort_unique, sorted_unique

# Upper case, a non-ASCII letter and "/" against "-" : byte order, not a locale's or a path walk's.
KEYS = [f"s3://b/{prefix}/img{n:05d}.jpg" for n in range(3000) for prefix in ("a", "a-b", "B", "é")[n % 4:n % 4 + 1]]


def pages_of(keys: list[str], size: int) -> list[list[str]]:
    return [keys[start:start + size] for start in range(0, len(keys), size)]


def collected(arrays) -> list[str]:
    return [key for array in arrays for key in array.to_pylist()]


def test_sort_unique_is_pythons_string_order():
    keys = ["b", "a", "é", "Z", "a", "a/b", "a-b", "b"]
    assert sort_unique(pa.array(keys)).to_pylist() == sorted(set(keys))


def test_one_run_in_memory_when_it_fits(tmp_path):
    shuffled = KEYS + KEYS[:100]
    random.Random(0).shuffle(shuffled)
    assert collected(sorted_unique(pages_of(shuffled, 700), run_keys=10_000, scratch_dir=str(tmp_path))) == sorted(set(KEYS))
    assert list(tmp_path.iterdir()) == []  # nothing spilled


def test_unordered_listing_is_spilled_in_runs_and_merged(tmp_path):
    shuffled = KEYS + KEYS[:100]  # duplicates across runs
    random.Random(1).shuffle(shuffled)
    stream = sorted_unique(pages_of(shuffled, 700), run_keys=1000, scratch_dir=str(tmp_path))
    first = next(stream)
    spilled = list(next(tmp_path.iterdir()).iterdir())
    assert len(spilled) == -(-len(shuffled) // 1400)  # runs close once they reach 1,000 keys: 2 pages each
    assert collected([first, *stream]) == sorted(set(KEYS))
    assert list(tmp_path.iterdir()) == []  # scratch removed


def test_sorted_listing_streams_its_runs_in_order(tmp_path):
    ordered = sorted(set(KEYS))
    arrays = list(sorted_unique(pages_of(ordered, 1000), run_keys=1000, scratch_dir=str(tmp_path)))
    assert collected(arrays) == ordered
    assert all(len(array) <= CHUNK_KEYS for array in arrays)


def test_nothing_listed_yields_nothing():
    assert list(sorted_unique([[], []])) == []
