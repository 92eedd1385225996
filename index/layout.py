"""Where a gallery's files live under its root URI:

    LATEST                                   -> the current version string
    versions/<version>/manifest.json         format, version, model pack, dim, threshold, file hashes
    versions/<version>/<FILES>               index.faiss, references.parquet, identities.parquet
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Optional

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from core import storage
from core.config import StorageConfig

LATEST = "LATEST"
VERSIONS_DIR = "versions"
MANIFEST = "manifest.json"
FILES = ("index.faiss", "references.parquet", "identities.parquet")


def latest_uri(root: str) -> str:
    return storage.join(root, LATEST)


def version_uri(root: str, version: str) -> str:
    return storage.join(root, VERSIONS_DIR, version)


def gallery_root(uri: str, storage_config: Optional[StorageConfig] = None) -> Optional[str]:
    """The root (the directory holding LATEST and versions/) of a root or version URI."""
    uri = uri.rstrip("/")
    if storage.exists(latest_uri(uri), storage_config):
        return uri
    parent = uri.rsplit("/", 2)
    if len(parent) == 3 and parent[1] == VERSIONS_DIR and storage.exists(latest_uri(parent[0]),
                                                                       storage_config):
        return parent[0]
    return None


def versions_holding(root: str, identity_id: str, storage_config: Optional[StorageConfig] = None) -> list[str]:
    """Version URIs under root whose references still contain the identity."""
    found = []
    versions_dir = storage.join(root, VERSIONS_DIR)
    if not storage.exists(versions_dir, storage_config):
        return found
    for uri in storage.list_files(versions_dir, [".parquet"], storage_config):
        if not uri.endswith("/references.parquet"):
            continue
        fs, path = storage.resolve(uri, storage_config)
        identities = pq.read_table(path, filesystem=fs, columns=["identity_id"]).column("identity_id")
        if pc.any(pc.equal(identities, identity_id)).as_py():
            found.append(uri.rsplit("/", 1)[0])
    return sorted(found)


def purge_version(version_uri: str, superseded_by: str, storage_config: Optional[StorageConfig] = None) -> None:
    """Delete a version's biometric data; keep its manifest so gallery_version stays traceable."""
    manifest_uri = storage.join(version_uri, MANIFEST)
    manifest = json.loads(storage.read_bytes(manifest_uri, storage_config))
    for name in FILES:
        fs, path = storage.resolve(storage.join(version_uri, name), storage_config)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_file(path)
    manifest["purged"] = {"at": datetime.now(timezone.utc).isoformat(), "superseded_by": superseded_by,
                          "reason": "identity removed (right to be forgotten); data files deleted"}
    manifest["files"] = {}
    storage.write_bytes(manifest_uri, json.dumps(manifest, indent=2).encode(), storage_config)
