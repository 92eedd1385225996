"""What a crawl reads: every file below a prefix, or the URIs a manifest file lists (optionally a
range of its lines), yielded a page at a time so that the driver never holds the whole list
(the job freezes them in sorted order, vipwatch/crawl/shards.py)."""
from __future__ import annotations

import io
from itertools import islice
from typing import Iterator, Optional

from core import storage
from core.config import LineRange

MANIFEST_EXTENSIONS = (".txt", ".lst", ".csv", ".manifest")
# URIs per page from a manifest (a prefix listing pages as the store does, core/storage.py).
MANIFEST_PAGE = 10_000
MANIFEST_READ_BUFFER = 8 << 20


def is_manifest(input_uri: str, storage_config=None) -> bool:
    return input_uri.lower().endswith(MANIFEST_EXTENSIONS) and storage.exists(input_uri, storage_config)


def manifest_uri(line: str) -> Optional[str]:
    """The URI a manifest line names (first CSV column), or None for a blank, comment or header line."""
    uri = line.strip().split(",")[0]
    if not uri or uri.startswith("#") or uri == "uri":
        return None
    return storage.normalise(uri)


def iter_manifest_pages(input_uri: str, storage_config=None,
                        lines: Optional[LineRange] = None) -> Iterator[list[str]]:
    """The manifest read as a stream, lines ``lines.start`` <= n < ``lines.end`` (0 = the file's
    first line, blank and comment lines counted), a page of URIs at a time."""
    filesystem, path = storage.resolve(input_uri, storage_config)
    # Buffered: on S3 every read of the stream is a ranged GET.
    with filesystem.open_input_stream(path, buffer_size=MANIFEST_READ_BUFFER) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8")
        selected = islice(text, lines.start, lines.end) if lines is not None else text
        uris = (manifest_uri(line) for line in selected)
        yield from storage.in_pages((uri for uri in uris if uri is not None), MANIFEST_PAGE)


def iter_inputs(input_uri: str, storage_config=None, lines: Optional[LineRange] = None) -> Iterator[list[str]]:
    """A prefix (every file below it, hidden and '_' marker files aside) or a manifest file
    with one URI per line (lines starting with '#' ignored), a page of URIs at a time."""
    if is_manifest(input_uri, storage_config):
        yield from iter_manifest_pages(input_uri, storage_config, lines)
        return
    if lines is not None:
        raise ValueError(f"a line range applies to a manifest file ({', '.join(MANIFEST_EXTENSIONS)}), "
                         f"not to the prefix {input_uri}")
    for page in storage.iter_file_pages(input_uri, storage=storage_config):
        kept = [u for u in page if not u.rsplit("/", 1)[-1].startswith((".", "_"))]
        if kept:
            yield kept
