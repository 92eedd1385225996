"""Model packs, one file per kind (as in insightface's model_zoo), and the loader."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from operators.packs.base import Detection, ModelPack
from operators.packs.dlib_pack import DlibPack
from core import storage
from core.config import ModelPackConfig, StorageConfig

__all__ = ["Detection", "ModelPack", "load_model_pack", "local_pack_dir"]


def local_pack_dir(uri: str, storage_config: StorageConfig | None = None) -> str:
    """An s3:// pack is copied once into a local cache (ONNX Runtime reads local files)."""
    if not storage.is_s3(uri):
        return uri
    cache_root = Path(os.environ.get("VIPWATCH_CACHE", Path.home() / ".cache" / "vipwatch")) / "packs"
    target = cache_root / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        for file_uri in storage.list_files(uri, extensions=[".onnx"], storage=storage_config):
            (target / file_uri.rsplit("/", 1)[1]).write_bytes(storage.read_bytes(file_uri, storage_config))
        (target / ".complete").touch()
    return str(target)


def load_model_pack(config: ModelPackConfig, storage_config: StorageConfig | None = None,
                    threads: int = 0) -> ModelPack:
    spec = config.pack
    if spec in ("dlib", "dlib:hog", "dlib:cnn"):
        return DlibPack(detector="cnn" if spec == "dlib:cnn" else "hog", upsample=config.dlib_upsample)
    from operators.packs.onnx_pack import OnnxPack  # lazy: onnxruntime only when an ONNX pack is asked for

    return OnnxPack(local_pack_dir(spec, storage_config), detector=config.detector,
                    detector_file=config.detector_file, embedder_file=config.embedder_file,
                    det_size=config.det_size, det_threshold=config.det_threshold,
                    device=config.device, threads=threads, embed_batch_size=config.embed_batch_size)
