"""Right to be forgotten: a new gallery version without one identity (jobs.remove_identity).

The version is rebuilt from the remaining references (Gallery.without_identity), so the FAISS
index, the embeddings, the per-identity statistics, the forgery references and the calibrated
threshold contain nothing derived from that person. The new manifest names the version it
derives from, not the identity. With ``purge_previous`` the data files of every older version
under the source root that holds the identity are deleted (index/layout.py), their manifests
kept, marked purged."""
from __future__ import annotations

from typing import Optional

from core.config import StorageConfig
from index.gallery import Gallery, GalleryError
from index.layout import gallery_root, purge_version, versions_holding


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
