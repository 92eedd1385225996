"""One face per image, embedded by the crawl's own decoder and analyzer, with what scoring
experiments need beside the embedding (the horizontally flipped crop's embedding, detector score,
face size, blur), cached on disk so LFW is embedded once per model pack.

The face kept is the largest whose box holds the image centre (LFW's convention: the subject is
centred; a probe photo's subject is its main face), else the largest face.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pandas as pd

from core import storage
from core.config import DecodeConfig, StorageConfig
from core.schema import STATUS_OK
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer

log = logging.getLogger(__name__)
# Bumped when the face choice or the stored fields change, so old caches are not reused.
CACHE_FORMAT = 1
CHUNK = 64
SAVE_EVERY = 256


def default_cache_dir() -> Path:
    return Path(os.environ.get("VIPWATCH_CACHE", Path.home() / ".cache" / "vipwatch")) / "faces"


@dataclass
class FaceSet:
    """Row i describes image ``keys[i]``; ``found[i]`` is False when no usable face was found
    (then its vectors are zero and it must not be scored)."""
    keys: np.ndarray
    found: np.ndarray
    embedding: np.ndarray
    flip_embedding: np.ndarray
    det_score: np.ndarray
    face_px: np.ndarray
    blur: np.ndarray
    faces_in_image: np.ndarray
    model_pack: str
    embedder_id: str

    def take(self, rows) -> "FaceSet":
        fields = {name: getattr(self, name)[rows] for name in
                  ("keys", "found", "embedding", "flip_embedding", "det_score", "face_px", "blur", "faces_in_image")}
        return FaceSet(**fields, model_pack=self.model_pack, embedder_id=self.embedder_id)

    def rows_of(self, keys) -> np.ndarray:
        position = {key: i for i, key in enumerate(self.keys.tolist())}
        return np.asarray([position[k] for k in keys], dtype=np.int64)


def blur_score(aligned_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned crop: low = blurred or upscaled from few pixels."""
    grey = cv2.cvtColor(aligned_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _main_face(faces: pd.DataFrame) -> int:
    return main_face_index(np.stack(faces["bbox"].to_numpy()), faces["image_width"].to_numpy(),
                           faces["image_height"].to_numpy())


def main_face_index(boxes: np.ndarray, width, height) -> int:
    """Of the boxes (x1, y1, x2, y2) found in one image, the largest holding the image centre, else the largest."""
    centre_x = np.asarray(width, np.float64) / 2.0
    centre_y = np.asarray(height, np.float64) / 2.0
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    holds_centre = ((boxes[:, 0] <= centre_x) & (centre_x <= boxes[:, 2])
                    & (boxes[:, 1] <= centre_y) & (centre_y <= boxes[:, 3]))
    ranked = np.where(holds_centre, area + 1e12, area)
    return int(np.argmax(ranked))


def _embed_chunk(uris: list[str], analyzer: FaceAnalyzer, decoder: ImageDecoder,
                 storage_config: Optional[StorageConfig]) -> dict[str, tuple]:
    batch = pd.DataFrame({"path": uris, "bytes": [storage.read_bytes(u, storage_config) for u in uris]})
    rows = analyzer(decoder(batch)).to_pandas()
    result: dict[str, tuple] = {}
    faces = rows[rows["status"] == STATUS_OK]
    chosen_crops, chosen = [], []
    for uri, group in faces.groupby("image_uri", sort=False):
        row = group.iloc[_main_face(group)]
        crop = np.frombuffer(row["aligned_face"], np.uint8).reshape(112, 112, 3)
        box = row["bbox"]
        chosen.append((uri, row, len(group), float(min(box[2] - box[0], box[3] - box[1]))))
        chosen_crops.append(crop)
    if chosen_crops:
        flipped = analyzer.pack.embed([np.ascontiguousarray(c[:, ::-1]) for c in chosen_crops])
        for (uri, row, count, face_px), crop, flip in zip(chosen, chosen_crops, flipped):
            result[uri] = (np.asarray(row["embedding"], np.float32), flip.astype(np.float32),
                           float(row["det_score"]), face_px, blur_score(crop), count)
    return result


def cache_file(cache_dir: Path, analyzer: FaceAnalyzer) -> Path:
    """One file per pack and detection settings; entries are keyed by the image bytes' sha256,
    so the same photo under another root or name is not embedded twice."""
    settings = analyzer.model_config.model_dump(exclude={"pack", "device", "embed_batch_size"})
    key = f"{CACHE_FORMAT}|{analyzer.pack.name}|{analyzer.aligned}|{sorted(settings.items())}"
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def _save(path: Path, store: dict[str, tuple], analyzer: FaceAnalyzer) -> None:
    keys = sorted(store)
    dim = analyzer.pack.embedding_dim
    zero = (np.zeros(dim, np.float32), np.zeros(dim, np.float32), 0.0, 0.0, 0.0, 0)
    values = [store[k] or zero for k in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, keys=np.asarray(keys), found=np.asarray([store[k] is not None for k in keys]),
             embedding=np.asarray([v[0] for v in values], np.float32).reshape(len(keys), dim),
             flip_embedding=np.asarray([v[1] for v in values], np.float32).reshape(len(keys), dim),
             det_score=np.asarray([v[2] for v in values], np.float32),
             face_px=np.asarray([v[3] for v in values], np.float32),
             blur=np.asarray([v[4] for v in values], np.float32),
             faces_in_image=np.asarray([v[5] for v in values], np.int32))
    os.replace(temporary, path)


def _load(path: Path) -> dict[str, tuple]:
    if not path.exists():
        return {}
    with np.load(path) as stored:
        data = {name: stored[name] for name in stored.files}  # an NpzFile re-reads an array per access
    return {key: (data["embedding"][i], data["flip_embedding"][i], float(data["det_score"][i]),
                  float(data["face_px"][i]), float(data["blur"][i]), int(data["faces_in_image"][i]))
            if data["found"][i] else None
            for i, key in enumerate(data["keys"].tolist())}


def embed_faces(uris: list[str], analyzer: FaceAnalyzer, cache_dir: Optional[str | Path] = None,
                storage_config: Optional[StorageConfig] = None) -> FaceSet:
    """The main face of each image, in the order given. Images already in the cache (same pack and
    detection settings, same bytes) are not embedded again; ``cache_dir=""`` disables the cache."""
    use_cache = cache_dir != ""
    path = cache_file(Path(cache_dir) if cache_dir else default_cache_dir(), analyzer)
    store = _load(path) if use_cache else {}
    digests = [hashlib.sha256(storage.read_bytes(u, storage_config)).hexdigest() for u in uris]
    missing = list(dict.fromkeys(u for u, d in zip(uris, digests) if d not in store))
    if missing:
        log.info("embedding %d of %d images with %s", len(missing), len(uris), analyzer.pack.name)
    digest_of = dict(zip(uris, digests))
    decoder = ImageDecoder(DecodeConfig())
    since_save = 0
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start:start + CHUNK]
        found = _embed_chunk(chunk, analyzer, decoder, storage_config)
        for uri in chunk:
            store[digest_of[uri]] = found.get(uri)
        since_save += len(chunk)
        if use_cache and since_save >= SAVE_EVERY:
            _save(path, store, analyzer)
            since_save = 0
            log.info("embedded %d/%d", start + len(chunk), len(missing))
    if use_cache and since_save:
        _save(path, store, analyzer)
    dim = analyzer.pack.embedding_dim
    values = [store[d] for d in digests]
    zero = np.zeros(dim, np.float32)

    def column(index, dtype):
        return np.asarray([v[index] if v is not None else 0 for v in values], dtype)

    def vectors(index):
        return np.asarray([v[index] if v is not None else zero for v in values], np.float32).reshape(len(values), dim)

    return FaceSet(keys=np.asarray(uris), found=np.asarray([v is not None for v in values], bool),
                   embedding=vectors(0), flip_embedding=vectors(1), det_score=column(2, np.float32),
                   face_px=column(3, np.float32), blur=column(4, np.float32), faces_in_image=column(5, np.int32),
                   model_pack=analyzer.pack.name, embedder_id=analyzer.pack.embedder_id)


def list_identity_images(root: str, storage_config: Optional[StorageConfig] = None) -> list[tuple[str, str]]:
    """(identity, uri) for ROOT/<identity>/<image>, sorted; files directly under ROOT are skipped."""
    root = storage.normalise(root)
    pairs = []
    for uri in storage.list_files(root, storage.IMAGE_EXTENSIONS, storage_config):
        relative = uri[len(root):].lstrip("/")
        if "/" in relative:
            pairs.append((relative.split("/", 1)[0], uri))
    return sorted(pairs)
