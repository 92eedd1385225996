"""dlib pack: HOG (or CNN) detector, 68-point landmarks reduced to the ArcFace 5 points,
ResNet 128-d descriptor. Weights come from the face-recognition-models wheel (offline)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from operators.packs.base import Detection, ModelPack, file_digest, l2_normalise


def dlib_model_dir() -> Path:
    # Imported by spec, not by name: face_recognition_models imports pkg_resources.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("the dlib pack needs the face-recognition-models package")
    return Path(spec.origin).parent / "models"


class DlibPack(ModelPack):
    embedding_dim = 128
    licence = ("dlib (Boost); ResNet descriptor CC0; shape_predictor_68 from iBUG 300-W "
               "(non-commercial); mmod detector CC0")

    def __init__(self, detector: str = "hog", upsample: int = 1, det_threshold: float = 0.0):
        import dlib

        self._dlib = dlib
        models = dlib_model_dir()
        self.detector_kind = detector
        if detector == "cnn":
            self._detector = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))
        else:
            self._detector = dlib.get_frontal_face_detector()
        self._upsample = upsample
        self._det_threshold = det_threshold
        self._landmarks68 = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
        self._landmarks5 = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        descriptor_file = models / "dlib_face_recognition_resnet_model_v1.dat"
        self._descriptor = dlib.face_recognition_model_v1(str(descriptor_file))
        self.embedder_id = f"dlib_resnet_v1@{file_digest(descriptor_file)}"
        self.name = f"dlib-{detector}+{self.embedder_id}"

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        dlib = self._dlib
        image_rgb = np.ascontiguousarray(image_rgb)
        if self.detector_kind == "cnn":
            found = [(d.rect, float(d.confidence)) for d in self._detector(image_rgb, self._upsample)]
        else:
            rects, scores, _ = self._detector.run(image_rgb, self._upsample, self._det_threshold)
            found = list(zip(rects, scores))
        detections = []
        for rect, score in found:
            shape = self._landmarks68(image_rgb, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            # ArcFace order: eye on the image left, eye on the image right, nose tip, mouth corners.
            landmarks = np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])
            bbox = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            detections.append(Detection(bbox=bbox, landmarks=landmarks, score=float(score)))
        return detections

    def embed(self, aligned_faces: list[np.ndarray]) -> np.ndarray:
        if not aligned_faces:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        dlib = self._dlib
        vectors = []
        for face in aligned_faces:
            face = np.ascontiguousarray(face)
            height, width = face.shape[:2]
            # dlib aligns with its own template: measured rank-1 1.00 vs 0.88 for a plain resize.
            shape = self._landmarks5(face, dlib.rectangle(0, 0, width - 1, height - 1))
            vectors.append(np.array(self._descriptor.compute_face_descriptor(face, shape, 0, 0.25)))
        return l2_normalise(np.stack(vectors))
