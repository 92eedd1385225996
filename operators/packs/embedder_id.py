"""A model pack's ``embedder_id`` without loading it, so the crawl driver can refuse a gallery
built with another embedder before any worker starts (loading the pack takes seconds and,
for dlib, hundreds of MB).

Must agree with ``OnnxPack.embedder_id`` / ``DlibPack.embedder_id``: tests/integration/test_reliability.py
checks it against the loaded packs.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from operators.packs import local_pack_dir
from operators.packs.base import file_digest
from operators.packs.dlib_pack import dlib_model_dir
from core.config import ModelPackConfig, StorageConfig

log = logging.getLogger(__name__)


def _is_recogniser(path: Path) -> bool:
    """model_zoo's routing rule, read from the ONNX graph without creating a session: fewer than
    5 outputs and a square input of at least 112 pixels, a multiple of 16."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initialisers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if not inputs or len(graph.output) >= 5:
        return False
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    return len(dims) == 4 and dims[2] is not None and dims[2] == dims[3] and dims[2] >= 112 and dims[2] % 16 == 0


def expected_embedder_id(config: ModelPackConfig, storage_config: Optional[StorageConfig] = None) -> Optional[str]:
    """The embedder_id the pack will report, or None when it cannot be told cheaply (the
    GalleryMatcher still checks every batch)."""
    try:
        if config.pack in ("dlib", "dlib:hog", "dlib:cnn"):
            return f"dlib_resnet_v1@{file_digest(dlib_model_dir() / 'dlib_face_recognition_resnet_model_v1.dat')}"
        directory = Path(local_pack_dir(config.pack, storage_config))
        if config.embedder_file:
            path = directory / config.embedder_file
        elif config.detector_file:
            return None  # OnnxPack then routes only the named files and finds no recogniser
        else:
            candidates = [p for p in sorted(directory.glob("*.onnx"))
                          if "yunet" not in p.name.lower() and _is_recogniser(p)]
            if not candidates:
                return None
            path = max(candidates, key=lambda p: p.stat().st_size)  # as OnnxPack picks
        return f"{path.stem}@{file_digest(path)}"
    except Exception as exc:  # a pack the driver cannot inspect: the workers will say why
        log.warning("cannot tell the embedder of %s cheaply (%s); the matcher checks it per batch", config.pack, exc)
        return None
