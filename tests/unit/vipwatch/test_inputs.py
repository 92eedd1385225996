"""What a crawl reads, streamed a page at a time (vipwatch/crawl/inputs.py, core/storage.py)."""
from pathlib import Path

import pytest

from core import storage
from core.config import LineRange
from vipwatch.crawl.inputs import MANIFEST_PAGE, iter_inputs


def flat(pages) -> list[str]:
    return [uri for page in pages for uri in page]


@pytest.fixture()
def manifest(tmp_path) -> Path:
    lines = ["uri", "# crawled 2026-12-03"] + [f"s3://in/img{n:05d}.jpg" for n in range(25_000)]
    lines[500] = ""
    lines[700] = "s3://in/with-label.jpg,1"
    path = tmp_path / "inputs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_manifest_streams_in_pages(manifest):
    pages = list(iter_inputs(str(manifest)))
    assert max(len(page) for page in pages) == MANIFEST_PAGE and len(pages) == 3
    uris = flat(pages)
    assert len(uris) == 25_000 - 1  # header, comment and blank line skipped; line 500 was blank
    assert uris[0] == "s3://in/img00000.jpg" and "s3://in/with-label.jpg" in uris


def test_adjacent_line_ranges_split_a_manifest_exactly(manifest):
    whole = flat(iter_inputs(str(manifest)))
    ranges = [LineRange(end=7_000), LineRange(start=7_000, end=7_001), LineRange(start=7_001, end=20_000),
              LineRange(start=20_000)]
    parts = [flat(iter_inputs(str(manifest), lines=lines)) for lines in ranges]
    assert sum(parts, []) == whole
    # Lines count from 0 with the header and comment included: line 2 is img00000.
    assert parts[1] == [f"s3://in/img{7_000 - 2:05d}.jpg"]
    assert flat(iter_inputs(str(manifest), lines=LineRange(start=2, end=4))) == ["s3://in/img00000.jpg",
                                                                                   "s3://in/img00001.jpg"]
    assert flat(iter_inputs(str(manifest), lines=LineRange(start=10**6))) == []


def test_a_line_range_on_a_prefix_is_refused(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="manifest"):
        list(iter_inputs(str(tmp_path), lines=LineRange(end=10)))


def test_line_range_parsing():
    assert (LineRange.parse("5:9").start, LineRange.parse("5:9").end) == (5, 9)
    assert (LineRange.parse(":9").start, LineRange.parse("5:").end) == (0, None)
    assert str(LineRange.parse("5:")) == "5:"
    for bad in ("5", "9:5", "5:5", "-1:3", "a:b"):
        with pytest.raises(ValueError):
            LineRange.parse(bad)


def test_a_local_prefix_lists_every_file_but_markers(tmp_path):
    for relative in ["a/1.jpg", "a/b/2.jpg", "c.png", "a/.hidden.jpg", "_SUCCESS", "a/_tmp.jpg"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    root = storage.normalise(str(tmp_path))
    assert sorted(flat(iter_inputs(str(tmp_path)))) == [f"{root}/a/1.jpg", f"{root}/a/b/2.jpg", f"{root}/c.png"]
    assert flat(storage.iter_file_pages(str(tmp_path), [".PNG"])) == [f"{root}/c.png"]
    with pytest.raises(FileNotFoundError):
        list(iter_inputs(str(tmp_path / "missing")))
