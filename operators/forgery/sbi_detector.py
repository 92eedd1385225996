"""SBIDetector: the ArtefactDetector over an artefact written by ``jobs.train_forgery``; the
URI ``shipped`` names the artefact shipped inside the package (``artefacts/``, a few MB) that
the opt-in fusion was fitted with; the bare name of any other artefact directory there (e.g.
``sbi-mfn-v2``) names that one, so a spec means the same in a checkout, a wheel and the image."""
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
ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
# The one fusion-lr-0192695e was fitted on; sbi-mfn-v2 continues it (docs/forgery.md).
SHIPPED = ARTEFACTS / "sbi-mfn-v1"


def resolve_artifact(artifact_uri: str) -> str:
    """``shipped`` or the name of an artefact directory inside the package -> its path; else as given."""
    if artifact_uri == "shipped":
        return str(SHIPPED)
    named = ARTEFACTS / artifact_uri
    if artifact_uri and "/" not in artifact_uri and ":" not in artifact_uri and (named / "manifest.json").is_file():
        return str(named)
    return artifact_uri


class SBIDetector:
    name = "sbi"

    def __init__(self, artifact_uri: str, device: str = "auto", batch_size: int = 64,
                 storage_config: StorageConfig | None = None):
        artifact_uri = resolve_artifact(artifact_uri)
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
