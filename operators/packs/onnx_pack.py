"""insightface-format ONNX pack (e.g. an unpacked buffalo_l, or ../shared/models): SCRFD or
YuNet detector + ArcFace-style recogniser, loaded with insightface.model_zoo and batched."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import onnxruntime

from operators.packs.base import Detection, ModelPack, file_digest, l2_normalise
from operators.packs.device import CPU, check_session_device, preload_cuda_libraries, select_providers, uses_gpu
from operators.packs.yunet import YuNetDetector

log = logging.getLogger(__name__)


def _session_options(threads: int) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        # A pinned thread count means the session shares its cores with other stages (a Ray
        # actor beside decode and read): idle intra-op threads must sleep, not spin, or they
        # burn the CPU those stages need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _route(onnx_files: list[Path], providers: list[str], threads: int) -> dict[str, list]:
    """Let model_zoo decide what each file is (it routes by inputs/outputs), keep the file."""
    from insightface.model_zoo import get_model

    found: dict[str, list] = {"detection": [], "recognition": []}
    for path in onnx_files:
        if "yunet" in path.name.lower():
            continue  # cv2.FaceDetectorYN model; model_zoo would mistake it for SCRFD
        model = get_model(str(path), providers=providers, sess_options=_session_options(threads))
        if model is not None and getattr(model, "taskname", None) in found:
            found[model.taskname].append((path, model))
    return found


class OnnxPack(ModelPack):
    licence = "user-supplied ONNX weights: see the pack's own licence (insightface models: non-commercial research)"

    def __init__(self, pack_dir: str, detector: str = "auto", detector_file: Optional[str] = None,
                 embedder_file: Optional[str] = None, det_size: int = 640, det_threshold: float = 0.5,
                 device: str = "auto", threads: int = 0, embed_batch_size: int = 64):
        self.embed_batch_size = max(1, embed_batch_size)
        directory = Path(pack_dir)
        if not directory.is_dir():
            raise FileNotFoundError(f"ONNX model pack directory not found: {pack_dir}")
        self.providers = select_providers(device)
        if uses_gpu(self.providers):
            preload_cuda_libraries()
        self.ctx_id = 0 if uses_gpu(self.providers) else -1
        onnx_files = sorted(directory.glob("*.onnx"))
        wanted = [directory / f for f in (detector_file, embedder_file) if f]
        routed = _route(wanted or onnx_files, self.providers, threads)
        if embedder_file:
            routed["recognition"] = [r for r in routed["recognition"] if r[0].name == embedder_file]
        if not routed["recognition"]:
            raise ValueError(f"no ArcFace-style recogniser found in {pack_dir}")
        # Several recognisers (buffalo packs ship one): the largest is the most accurate.
        embedder_path, self.recogniser = max(routed["recognition"], key=lambda r: r[0].stat().st_size)
        self.recogniser.prepare(ctx_id=self.ctx_id)
        self.embedding_dim = int(self.recogniser.output_shape[1])
        self.embedder_id = f"{embedder_path.stem}@{file_digest(embedder_path)}"

        yunet_files = [p for p in onnx_files if "yunet" in p.name.lower()]
        if detector_file and "yunet" in detector_file.lower():
            yunet_files, detector = [directory / detector_file], "yunet"
        self.det_size = det_size
        if detector == "yunet" or (detector == "auto" and not routed["detection"] and yunet_files):
            if not yunet_files:
                raise ValueError(f"detector=yunet but no yunet*.onnx in {pack_dir}")
            self._yunet = YuNetDetector(str(yunet_files[0]), det_size=det_size, score_threshold=det_threshold)
            self._scrfd = None
            detector_path = yunet_files[0]
        else:
            detectors = routed["detection"]
            if detector_file:
                detectors = [d for d in detectors if d[0].name == detector_file]
            if not detectors:
                raise ValueError(f"no SCRFD detector found in {pack_dir}")
            # Without an explicit choice take the smallest: fastest, and CPU throughput is the limit.
            detector_path, self._scrfd = min(detectors, key=lambda d: d[0].stat().st_size)
            self._scrfd.prepare(ctx_id=self.ctx_id, input_size=(det_size, det_size), det_thresh=det_threshold)
            self._yunet = None
        self.name = f"onnx:{detector_path.stem}@{file_digest(detector_path)}+{self.embedder_id}"
        self._check_active_providers(device)
        log.info("model pack %s on %s", self.name, self.providers)

    def _check_active_providers(self, device: str) -> None:
        sessions = {"recogniser": self.recogniser.session}
        if self._scrfd is not None:
            sessions["detector"] = self._scrfd.session
        elif uses_gpu(self.providers) and device == "cuda":
            raise RuntimeError("device=cuda but the YuNet detector runs on OpenCV's CPU backend: use an SCRFD "
                               "detector file for GPU nodes")
        active = {name: check_session_device(session.get_providers(), self.providers, device, f"{self.name} {name}")
                  for name, session in sessions.items()}
        if uses_gpu(self.providers) and not all(uses_gpu(p) for p in active.values()):
            self.providers, self.ctx_id = [CPU], -1  # device=auto fell back: say so in logs and fields

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        if self._yunet is not None:
            return self._yunet.detect(image_rgb)
        image_bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        boxes, keypoints = self._scrfd.detect(image_bgr, input_size=(self.det_size, self.det_size))
        return [Detection(bbox=box[:4].astype(np.float32), landmarks=kps.astype(np.float32), score=float(box[4]))
                for box, kps in zip(boxes, keypoints)]

    def embed(self, aligned_faces: list[np.ndarray]) -> np.ndarray:
        if not aligned_faces:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        # model_zoo recognisers take BGR (they swap to RGB inside blobFromImages).
        crops_bgr = [cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2BGR) for face in aligned_faces]
        step = self.embed_batch_size
        return l2_normalise(np.concatenate([self.recogniser.get_feat(crops_bgr[start:start + step])
                                            for start in range(0, len(crops_bgr), step)]))
