"""Right to be forgotten: jobs.remove_identity writes a gallery version in which nothing of the
identity survives (index, embeddings, statistics, forgery references, manifest), searches with
that person's own reference photos no longer return them, and older versions are purged but stay
traceable by their manifest."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from index.gallery import Gallery, GalleryError, embeddings_of

REPO = Path(__file__).resolve().parents[3]
REMOVED = "halle_berry"


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_in(item)


def vector_columns(table: pa.Table) -> list[str]:
    return [f.name for f in table.schema
            if (pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type) or pa.types.is_large_list(f.type))
            and pa.types.is_floating(f.type.value_type)]


def test_remove_identity(onnx_gallery, tmp_path):
    root = tmp_path / "gallery"
    shutil.copytree(onnx_gallery, root)
    before = Gallery.load(str(root))
    old_version_dir = root / "versions" / before.version
    assert REMOVED in before.identity_ids()
    removed_refs = before.references.filter(pa.compute.equal(before.references.column("identity_id"), REMOVED))
    removed_vectors = embeddings_of(removed_refs)
    # The test can fail: before removal the person's own references find them.
    assert all(found[0][0] == REMOVED for found in before.search(removed_vectors, 5))

    done = subprocess.run([sys.executable, "-m", "jobs.remove_identity", "--gallery", str(root),
                           "--identity", REMOVED, "--out", str(root), "--purge-previous"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print("remove_identity summary:", json.dumps(summary))

    after = Gallery.load(str(root))  # LATEST now points at the new version
    assert after.version == summary["gallery_version"] != before.version
    assert after.manifest["derived_from"] == before.version
    assert summary["removed_references"] == removed_refs.num_rows > 0
    assert set(after.identity_ids()) == set(before.identity_ids()) - {REMOVED}

    # No string anywhere in the artefact names the person: every column of both tables, the manifest.
    for name, table in (("references", after.references), ("identities", after.identities)):
        for column in table.column_names:
            if pa.types.is_binary(table.schema.field(column).type):
                continue
            hits = [s for s in strings_in(table.column(column).to_pylist()) if REMOVED in s]
            assert not hits, f"{name}.{column} still names {REMOVED}: {hits[:2]}"
    assert REMOVED not in json.dumps(after.manifest)

    # No vector of theirs survives in any float-vector column (embeddings, forgery references, centroids).
    before_identity = before.identities.filter(pa.compute.equal(before.identities.column("identity_id"), REMOVED))
    theirs = [embeddings_of(removed_refs, c) for c in vector_columns(removed_refs)]
    theirs += [embeddings_of(before_identity, c) for c in vector_columns(before_identity)]
    assert len(theirs) >= 2
    for table in (after.references, after.identities):
        for column in vector_columns(table):
            kept = embeddings_of(table, column)
            for vectors in theirs:
                if vectors.shape[1] != kept.shape[1]:
                    continue
                distance = np.abs(kept[:, None, :] - vectors[None, :, :]).max(axis=2)
                assert distance.min() > 1e-5, f"a vector of {REMOVED} survives in {column}"

    # The index holds exactly the remaining references, and searching with the person's own
    # reference embeddings never returns them.
    assert after.index.ntotal == after.references.num_rows == before.references.num_rows - removed_refs.num_rows
    results = after.search(removed_vectors, top_k=len(after.identity_ids()))
    assert all(REMOVED not in {identity for identity, _ in found} for found in results)
    assert max(score for found in results for _, score in found) < 0.999
    # Nobody else was lost: another identity's references still find that identity.
    other = after.identity_ids()[0]
    other_vectors = embeddings_of(after.references.filter(pa.compute.equal(after.references.column("identity_id"), other)))
    assert all(found[0][0] == other for found in after.search(other_vectors, 3))

    # The old version's data is purged; its manifest stays, so rows with that gallery_version are traceable.
    assert summary["purged_versions"] == [str(old_version_dir)]
    assert not (old_version_dir / "references.parquet").exists() and not (old_version_dir / "index.faiss").exists()
    old_manifest = json.loads((old_version_dir / "manifest.json").read_text())
    assert old_manifest["gallery_version"] == before.version
    assert old_manifest["purged"]["superseded_by"] == after.version
    with pytest.raises(GalleryError):
        Gallery.load(str(old_version_dir))


def test_remove_unknown_identity_is_refused(onnx_gallery, tmp_path):
    from index.removal import remove_identity

    with pytest.raises(GalleryError, match="not in gallery"):
        remove_identity(onnx_gallery, "nobody_by_this_name", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
