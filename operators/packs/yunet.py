"""YuNet detector (OpenCV Zoo) through cv2.FaceDetectorYN, usable as any pack's detector."""
from __future__ import annotations

import cv2
import numpy as np

from operators.packs.base import Detection


class YuNetDetector:
    def __init__(self, model_file: str, det_size: int = 640, score_threshold: float = 0.6):
        self.model_file = model_file
        self.det_size = det_size
        self._detector = cv2.FaceDetectorYN.create(model_file, "", (det_size, det_size), score_threshold, 0.3, 5000)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        height, width = image_rgb.shape[:2]
        # Detect on a copy whose long side is det_size; coordinates are scaled back.
        scale = min(1.0, self.det_size / max(height, width))
        image_bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            image_bgr = cv2.resize(image_bgr, (round(width * scale), round(height * scale)),
                                   interpolation=cv2.INTER_AREA)
        self._detector.setInputSize((image_bgr.shape[1], image_bgr.shape[0]))
        _, faces = self._detector.detect(image_bgr)
        detections = []
        for face in faces if faces is not None else []:
            x, y, w, h = face[:4] / scale
            landmarks = face[4:14].reshape(5, 2) / scale
            detections.append(Detection(bbox=np.array([x, y, x + w, y + h], dtype=np.float32),
                                        landmarks=landmarks.astype(np.float32), score=float(face[14])))
        return detections
