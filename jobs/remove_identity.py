"""python -m jobs.remove_identity --gallery URI --identity ID --out URI [--purge-previous]

Right to be forgotten: writes a new gallery version without one identity. The version is
rebuilt from the remaining references (Gallery.without_identity), so the FAISS index, the
embeddings, the per-identity statistics, the forgery references and the calibrated threshold
contain nothing derived from that person. The new manifest names the version it derives from,
not the identity.

Crawl rows keep the ``gallery_version`` they were matched against, so older outputs stay
traceable. Older versions still hold the identity's embeddings until purged:
``--purge-previous`` deletes the data files of every version under the source gallery root that
contains the identity and leaves its manifest.json (marked purged) as the record of what that
version was.
"""
from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime, timezone
from typing import Optional

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from index.gallery import FILES, Gallery, GalleryError
from core import storage
from vipwatch.cli import setup_logging
from core.config import StorageConfig

log = logging.getLogger("jobs.remove_identity")


def gallery_root(uri: str, storage_config: Optional[StorageConfig] = None) -> Optional[str]:
    """The root (the directory holding LATEST and versions/) of a root or version URI."""
    uri = uri.rstrip("/")
    if storage.exists(storage.join(uri, "LATEST"), storage_config):
        return uri
    parent = uri.rsplit("/", 2)
    if len(parent) == 3 and parent[1] == "versions" and storage.exists(storage.join(parent[0], "LATEST"),
                                                                       storage_config):
        return parent[0]
    return None


def versions_holding(root: str, identity_id: str, storage_config: Optional[StorageConfig] = None) -> list[str]:
    """Version URIs under root whose references still contain the identity."""
    found = []
    versions_dir = storage.join(root, "versions")
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
    manifest_uri = storage.join(version_uri, "manifest.json")
    manifest = json.loads(storage.read_bytes(manifest_uri, storage_config))
    for name in FILES:
        fs, path = storage.resolve(storage.join(version_uri, name), storage_config)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_file(path)
    manifest["purged"] = {"at": datetime.now(timezone.utc).isoformat(), "superseded_by": superseded_by,
                          "reason": "identity removed (right to be forgotten); data files deleted"}
    manifest["files"] = {}
    storage.write_bytes(manifest_uri, json.dumps(manifest, indent=2).encode(), storage_config)


def remove_identity(gallery_uri: str, identity_id: str, out_uri: str, purge_previous: bool = False,
                    storage_config: Optional[StorageConfig] = None) -> dict:
    source = Gallery.load(gallery_uri, storage_config)
    reduced = source.without_identity(identity_id)
    reduced.manifest["change"] = {"kind": "identity_removed", "at": reduced.manifest["created_at"]}
    version_uri = reduced.save(out_uri, storage_config)
    purged: list[str] = []
    if purge_previous:
        root = gallery_root(gallery_uri, storage_config)
        if root is None:
            raise GalleryError(f"--purge-previous needs a gallery root with LATEST and versions/, got {gallery_uri}")
        for version in versions_holding(root, identity_id, storage_config):
            purge_version(version, reduced.version, storage_config)
            purged.append(version)
    return {"gallery_version": reduced.version, "derived_from": source.version, "uri": version_uri,
            "identities": reduced.manifest["identity_count"], "references": reduced.manifest["reference_count"],
            "removed_references": source.manifest["reference_count"] - reduced.manifest["reference_count"],
            "match_threshold": round(reduced.match_threshold, 4), "purged_versions": purged}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", required=True, help="gallery root or version URI to remove the identity from")
    parser.add_argument("--identity", required=True, help="identity_id to remove")
    parser.add_argument("--out", required=True, help="gallery root the new version is written to (may be the same)")
    parser.add_argument("--purge-previous", action="store_true",
                        help="also delete the data files of every older version under the source root that "
                             "holds the identity (manifests are kept for traceability)")
    parser.add_argument("--json-logs", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.json_logs)
    summary = remove_identity(args.gallery, args.identity, args.out, purge_previous=args.purge_previous)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
