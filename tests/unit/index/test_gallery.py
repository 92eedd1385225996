"""Gallery artefact: enrolment, identification of held-out crops, persistence, refusals."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from vipwatch.enrol import embed_images, enroll
from index.gallery import Gallery, GalleryError, embeddings_of
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from operators.matcher import GalleryMatcher

from tests.support.shared_data import DLIB_PACK, ENROLLED_PER_IDENTITY, FACES_ALIGNED, ONNX_PACK, PHOTOS

# Measured here: MobileFaceNet rank-1 0.990 over the 908 held-out crops (STACK_NOTES: 0.993 with
# 7 identities). Chance is 1/14; a broken alignment or colour order drops rank-1 far below 0.9.
# 0.97 leaves room for ~25 more misses than measured, no more.
ONNX_RANK1_BAR = 0.97
# dlib measured 0.978 on every 4th held-out crop: same reasoning, a little lower bar.
DLIB_RANK1_BAR = 0.95


def held_out(step: int = 1) -> list[tuple[str, str]]:
    probes = []
    for identity_dir in sorted(FACES_ALIGNED.iterdir()):
        probes += [(identity_dir.name, str(p)) for p in sorted(identity_dir.iterdir())[ENROLLED_PER_IDENTITY:]]
    return probes[::step]


def rank1(gallery: Gallery, analyzer: FaceAnalyzer, probes) -> tuple[float, list]:
    rows = embed_images([uri for _, uri in probes], analyzer, ImageDecoder())
    results = gallery.search(embeddings_of(rows), top_k=5)
    hits = [found[0][0] == truth for found, (truth, _) in zip(results, probes)]
    return float(np.mean(hits)), results


def test_gallery_identifies_held_out_crops(onnx_gallery, onnx_aligned_analyzer):
    gallery = Gallery.load(onnx_gallery)
    assert gallery.manifest["identity_count"] == 14
    assert gallery.manifest["reference_count"] == 14 * ENROLLED_PER_IDENTITY
    probes = held_out()
    accuracy, results = rank1(gallery, onnx_aligned_analyzer, probes)
    identified = np.mean([f[0][0] == t and f[0][1] >= gallery.match_threshold for f, (t, _) in zip(results, probes)])
    print(f"\nONNX pack: rank-1 {accuracy:.4f} over {len(probes)} held-out crops; "
          f"identified at the calibrated threshold {gallery.match_threshold:.3f}: {identified:.4f}")
    assert accuracy >= ONNX_RANK1_BAR
    assert all(len(found) == 5 and found == sorted(found, key=lambda c: -c[1]) for found in results)


def test_threshold_is_calibrated_from_impostors(onnx_gallery):
    calibration = Gallery.load(onnx_gallery).manifest["calibration"]
    # The pack's impostor cohort (models/cohorts/), less any face of an enrolled person by name:
    # faces_aligned's people are never in a cohort.
    assert calibration["cohort"]["faces"] == calibration["impostor_count"] >= 3000
    assert calibration["cohort"]["excluded_enrolled_faces"] == 0
    assert calibration["leave_one_out_impostor_count"] == 14 * ENROLLED_PER_IDENTITY
    assert calibration["fpir_at_threshold"] <= calibration["target_fpir"]
    low, high = calibration["fpir_interval_95"]
    assert low <= calibration["fpir_at_threshold"] <= high and high - low <= calibration["target_fpir"]
    assert calibration["tpir_at_threshold_leave_one_out"] > 0.8


def test_identity_statistics(onnx_gallery):
    identities = Gallery.load(onnx_gallery).identities.to_pylist()
    for row in identities:
        assert row["reference_count"] == ENROLLED_PER_IDENTITY
        assert np.linalg.norm(row["centroid"]) == pytest.approx(1.0, abs=1e-5)
        assert row["intra_similarity_p05"] <= row["intra_similarity_p50"] <= row["intra_similarity_p95"]
        assert 0.2 < row["centroid_similarity_mean"] <= 1.0


def test_save_load_round_trip_over_s3(onnx_gallery, s3_server):
    local = Gallery.load(onnx_gallery)
    s3_server.create_bucket("gallery-roundtrip")
    version_uri = local.save("s3://gallery-roundtrip/vips")
    for uri in ("s3://gallery-roundtrip/vips", version_uri):  # root (via LATEST) and the version itself
        loaded = Gallery.load(uri)
        assert loaded.version == local.version
        queries = embeddings_of(local.references)[::7]
        assert loaded.search(queries, 5) == local.search(queries, 5)


def test_corrupt_artefact_is_refused(onnx_gallery, tmp_path):
    source = Gallery.load(onnx_gallery)
    target = tmp_path / "g"
    version_uri = source.save(str(target))
    index_file = f"{version_uri}/index.faiss"
    data = bytearray(open(index_file, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(index_file, "wb").write(bytes(data))
    with pytest.raises(GalleryError, match="corrupt"):
        Gallery.load(str(target))
    with pytest.raises(GalleryError, match="no gallery"):
        Gallery.load(str(tmp_path / "nothing-here"))


def test_gallery_refuses_embeddings_from_another_pack(onnx_gallery):
    matcher = GalleryMatcher(onnx_gallery)
    dlib_rows = embed_images([str(PHOTOS / "face_recognition/obama.jpg")], FaceAnalyzer(DLIB_PACK), ImageDecoder())
    with pytest.raises(GalleryError, match="built with embedder"):
        matcher(dlib_rows)


def test_references_need_exactly_one_face(tmp_path, onnx_analyzer):
    root = tmp_path / "refs"
    for identity in ("barack_obama", "someone"):
        (root / identity).mkdir(parents=True)
    shutil.copy(PHOTOS / "face_recognition/obama.jpg", root / "barack_obama/ok.jpg")
    shutil.copy(PHOTOS / "face_recognition/obama2.jpg", root / "barack_obama/ok2.jpg")
    shutil.copy(PHOTOS / "face_recognition/two_people.jpg", root / "barack_obama/two.jpg")
    shutil.copy(PHOTOS / "face_recognition/biden.jpg", root / "someone/ok.jpg")
    (root / "someone/broken.jpg").write_bytes(b"not an image")
    (root / "identities.csv").write_text("identity_id,display_name\nbarack_obama,Barack Obama\n")
    enrolment = enroll(str(root), ONNX_PACK, analyzer=onnx_analyzer)
    reasons = {item["image_uri"].rsplit("/", 1)[1]: item["reason"] for item in enrolment.rejected}
    assert set(reasons) == {"two.jpg", "broken.jpg"}
    assert "2 faces found" in reasons["two.jpg"] and "not a decodable image" in reasons["broken.jpg"]
    gallery = enrolment.gallery
    assert gallery.manifest["reference_count"] == 3
    names = dict(zip(gallery.identity_ids(), gallery.identities.column("display_name").to_pylist()))
    assert names == {"barack_obama": "Barack Obama", "someone": "someone"}


def test_dlib_pack_gallery(tmp_path):
    """The default pack end to end at small scale: 14 identities x 3 references, every 4th probe."""
    root = tmp_path / "refs"
    for identity_dir in sorted(FACES_ALIGNED.iterdir()):
        (root / identity_dir.name).mkdir(parents=True)
        for image in sorted(identity_dir.iterdir())[:3]:
            shutil.copy(image, root / identity_dir.name / image.name)
    analyzer = FaceAnalyzer(DLIB_PACK, aligned=True)
    gallery = enroll(str(root), DLIB_PACK, aligned=True, analyzer=analyzer).gallery
    assert gallery.manifest["embedder_id"].startswith("dlib_resnet_v1@")
    accuracy, _ = rank1(gallery, analyzer, held_out(step=8))
    print(f"\ndlib pack (3 references each): rank-1 {accuracy:.4f}")
    assert accuracy >= DLIB_RANK1_BAR - 0.05  # 3 instead of 10 references per identity
