"""Where the tests' real data and weights are (../shared) and the model packs they run."""
from __future__ import annotations

from core.config import SHARED_DIR, ModelPackConfig

if not (SHARED_DIR / "data").is_dir():
    raise RuntimeError(f"tests need ../shared beside the checkout (looked at {SHARED_DIR})")

DATA = SHARED_DIR / "data"
MODELS = SHARED_DIR / "models"
PHOTOS = DATA / "photos"
FACES_ALIGNED = DATA / "faces_aligned"
ONNX_PACK = ModelPackConfig(pack=str(MODELS), detector_file="scrfd_500m_kps.onnx",
                            embedder_file="mobilefacenet_128.onnx")
DLIB_PACK = ModelPackConfig(pack="dlib")
ENROLLED_PER_IDENTITY = 10
