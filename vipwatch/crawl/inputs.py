"""What a crawl reads: every file below a prefix, or the URIs a manifest file lists."""
from __future__ import annotations

from core import storage

MANIFEST_EXTENSIONS = (".txt", ".lst", ".csv", ".manifest")


def list_inputs(input_uri: str, storage_config=None) -> list[str]:
    """A prefix (every file below it, hidden and '_' marker files aside) or a manifest file
    with one URI per line (lines starting with '#' ignored)."""
    if input_uri.lower().endswith(MANIFEST_EXTENSIONS) and storage.exists(input_uri, storage_config):
        text = storage.read_bytes(input_uri, storage_config).decode("utf-8")
        uris = [line.strip().split(",")[0] for line in text.splitlines()]
        return [storage.normalise(u) for u in uris if u and not u.startswith("#") and u != "uri"]
    files = storage.list_files(input_uri, storage=storage_config)
    return [u for u in files if not u.rsplit("/", 1)[-1].startswith((".", "_"))]
