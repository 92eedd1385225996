"""Model packs on real photos: every pack finds the known faces and gives usable embeddings."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from operators.align import align_face
from operators.packs import load_model_pack
from core.config import ModelPackConfig

from tests.support.shared_data import DLIB_PACK, MODELS, ONNX_PACK, PHOTOS

YUNET_PACK = ModelPackConfig(pack=str(MODELS), detector="yunet", embedder_file="mobilefacenet_128.onnx")
KNOWN_FACES = {"face_recognition/two_people.jpg": 2, "facenet_pytorch/multiface.jpg": 6}


def rgb(relative: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(PHOTOS / relative)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module", params=[DLIB_PACK, ONNX_PACK, YUNET_PACK], ids=["dlib", "onnx-scrfd", "onnx-yunet"])
def pack(request):
    return load_model_pack(request.param)


@pytest.mark.parametrize("photo", sorted(KNOWN_FACES))
def test_pack_finds_every_face(pack, photo):
    detections = pack.detect(rgb(photo))
    assert len(detections) == KNOWN_FACES[photo], [d.score for d in detections]
    for detection in detections:
        x1, y1, x2, y2 = detection.bbox
        # ArcFace landmark order: the image-left eye first, eyes above the mouth, all inside the box.
        left_eye, right_eye, nose, mouth_left, mouth_right = detection.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < min(mouth_left[1], mouth_right[1])
        assert x1 - 5 <= nose[0] <= x2 + 5 and y1 - 5 <= nose[1] <= y2 + 5


def test_embeddings_separate_people(pack):
    """The two people in two_people.jpg are different; the same face embedded twice is identical."""
    image = rgb("face_recognition/two_people.jpg")
    crops = [align_face(image, d.landmarks)[0] for d in pack.detect(image)]
    embeddings = pack.embed(crops + crops[:1])
    assert embeddings.shape == (3, pack.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert embeddings[0] @ embeddings[2] == pytest.approx(1.0, abs=1e-5)
    assert embeddings[0] @ embeddings[1] < 0.97  # dlib's cosines run high; still clearly apart


def test_pack_names_identify_weights():
    onnx = load_model_pack(ONNX_PACK)
    yunet = load_model_pack(YUNET_PACK)
    assert onnx.embedder_id == yunet.embedder_id  # same embedder: galleries are interchangeable
    assert onnx.name != yunet.name and "scrfd_500m_kps" in onnx.name and "yunet" in yunet.name


def test_onnx_pack_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model_pack(ModelPackConfig(pack=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="no ArcFace-style recogniser"):
        load_model_pack(ModelPackConfig(pack=str(tmp_path)))


def test_onnx_sessions_with_pinned_threads_do_not_spin():
    """An actor's session (threads pinned) shares its cores with decode and read: idle threads
    sleep. jobs.benchmark --images 300: FaceAnalyzer CPU 45.5 s spinning vs 33.3 s not."""
    from operators.packs.onnx_pack import _session_options

    assert _session_options(2).get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert _session_options(2).intra_op_num_threads == 2
    # threads=0 (the plain loop, Serve on a dedicated replica): onnxruntime's own defaults.
    with pytest.raises(RuntimeError, match="does not have configuration"):
        _session_options(0).get_session_config_entry("session.intra_op.allow_spinning")


def test_onnx_recogniser_runs_in_bounded_chunks():
    """Faces are embedded embed_batch_size at a time (a crowd batch must not grow the actor's
    onnxruntime arena to hundreds of faces), with the same vectors as one call."""
    chunked = load_model_pack(ONNX_PACK.model_copy(update={"embed_batch_size": 3}))
    whole = load_model_pack(ONNX_PACK.model_copy(update={"embed_batch_size": 1000}))
    image = rgb("facenet_pytorch/multiface.jpg")
    faces = [align_face(image, d.landmarks)[0] for d in whole.detect(image)]
    assert len(faces) == 6
    calls = []
    original = chunked.recogniser.get_feat
    chunked.recogniser.get_feat = lambda crops: calls.append(len(crops)) or original(crops)
    np.testing.assert_allclose(chunked.embed(faces), whole.embed(faces), atol=1e-5)
    assert calls == [3, 3]
