"""SBIDetector: the ArtefactDetector over an artefact written by ``jobs.train_forgery``; the
URI ``shipped`` names the artefact shipped inside the package (``artefacts/``, a few MB)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from operators.forgery.sbi_model import model_inputs, read_artifact
from operators.forgery.torch_device import select_device
from core.config import StorageConfig

# Trained by jobs.train_forgery (docs/forgery.md "SBI detector"); inside the package so an
# installed wheel or image carries it.
SHIPPED = Path(__file__).resolve().parent / "artefacts" / "sbi-mfn-v1"


class SBIDetector:
    name = "sbi"

    def __init__(self, artifact_uri: str, device: str = "auto", batch_size: int = 64,
                 storage_config: StorageConfig | None = None):
        artifact_uri = str(SHIPPED) if artifact_uri == "shipped" else artifact_uri
        self.manifest, model_bytes = read_artifact(artifact_uri, storage_config)
        self.version = self.manifest["version"]
        self.input_size = int(self.manifest["input"]["size"])
        self.window = tuple(int(v) for v in self.manifest["input"]["context_window"])
        self.device = select_device(device)
        self.model = torch.jit.load(io.BytesIO(model_bytes), map_location=self.device).eval()
        self.batch_size = batch_size

    def score(self, context_faces: list[np.ndarray]) -> np.ndarray:
        inputs = model_inputs(context_faces, self.input_size, self.window)
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                batch = torch.from_numpy(inputs[start:start + self.batch_size]).to(self.device)
                out.append(self.model(batch).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)
