"""Real faces for SBI training, found once and cached as Parquet: for each face, the region of
the image around it at native resolution (PNG) and its 68 dlib landmarks in that region.

Blending happens later, at this resolution, and the network's input is cut from it with area
interpolation (operators/forgery/face_crop.py), never from an upscaled 112 crop. A Ray Data
pipeline (one task per batch of images) builds the cache, so it spreads over a cluster.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import pandas as pd

from core import storage
from core.config import DecodeConfig, StorageConfig
from core.schema import ALIGNED_SIZE, CONTEXT_SIZE
from operators.decode import DecodeError, decode_image
from operators.forgery.face_crop import alignment_matrix, matrix_scale
from operators.forgery.sbi import five_points
from operators.packs.dlib_pack import dlib_model_dir

log = logging.getLogger(__name__)
CACHE_MANIFEST = "faces_cache.json"
# A face larger than this many times the template scale is stored shrunk (area) to it: the
# network sees template scale, and past 2x the extra pixels only cost memory.
MAX_NATIVE_SCALE = 2.0
# Faces below this fraction of the template scale are too small to carry blending traces.
MIN_NATIVE_SCALE = 0.6
# dlib's box for a face on the 112 ArcFace template (median of its HOG detections on
# faces_aligned): used when HOG misses a face of an already aligned input.
ALIGNED_BOX = (10, 24, 99, 110)
_PAD = (CONTEXT_SIZE - ALIGNED_SIZE) // 2
READ_CPUS = 0.25


@dataclass(frozen=True)
class RealSource:
    """A folder of real images. ``aligned``: 112 template crops (one face each); ``one_face``:
    the labelled person is the face nearest the centre (LFW); otherwise every face is used."""
    name: str
    root: str
    aligned: bool = False
    one_face: bool = False
    upsample: int = 0

    def identity_of(self, uri: str) -> str:
        relative = uri[len(storage.normalise(self.root)):].lstrip("/")
        head = relative.split("/", 1)[0] if "/" in relative else relative
        # A flat folder (photos): each image is its own group.
        return f"{self.name}/{head}" if (self.aligned or self.one_face) else f"{self.name}/{relative}"


class Landmarker:
    """dlib HOG face detector + 68-point shape predictor."""

    def __init__(self):
        import dlib  # optional heavy dependency, only training / evaluation need it

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(dlib_model_dir() / "shape_predictor_68_face_landmarks.dat"))

    def shape(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        shape = self.predictor(rgb, self._dlib.rectangle(*[int(v) for v in box]))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def boxes(self, rgb: np.ndarray, upsample: int = 0) -> list[tuple[int, int, int, int]]:
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in self.detector(rgb, upsample)]

    def faces(self, rgb: np.ndarray, upsample: int = 0, one_face: bool = False) -> list[np.ndarray]:
        boxes = self.boxes(rgb, upsample)
        if one_face and boxes:
            centre = np.array(rgb.shape[1::-1]) / 2
            boxes = [min(boxes, key=lambda b: np.linalg.norm((np.array(b[:2]) + b[2:]) / 2 - centre))]
        return [self.shape(rgb, box) for box in boxes]

    def aligned_face(self, aligned_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A 112 template crop, padded as the crawl pads aligned inputs, and its landmarks."""
        rgb = cv2.resize(aligned_rgb, (ALIGNED_SIZE, ALIGNED_SIZE), interpolation=cv2.INTER_AREA) \
            if aligned_rgb.shape[:2] != (ALIGNED_SIZE, ALIGNED_SIZE) else aligned_rgb
        padded = cv2.copyMakeBorder(rgb, _PAD, _PAD, _PAD, _PAD, cv2.BORDER_REPLICATE)
        found = self.faces(padded, upsample=1, one_face=True)
        if found:
            return padded, found[0]
        return padded, self.shape(padded, tuple(v + _PAD for v in ALIGNED_BOX))


def native_region(rgb: np.ndarray, landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(region, landmarks in it, native scale): the part of ``rgb`` the 224 context frame covers,
    at native resolution (shrunk with area interpolation above MAX_NATIVE_SCALE)."""
    matrix = alignment_matrix(five_points(landmarks68), (0, 0, CONTEXT_SIZE, CONTEXT_SIZE))
    native_scale = 1.0 / matrix_scale(matrix)
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [CONTEXT_SIZE, 0], [0, CONTEXT_SIZE], [CONTEXT_SIZE, CONTEXT_SIZE]], np.float64)
    mapped = corners @ inverse[:, :2].T + inverse[:, 2]
    height, width = rgb.shape[:2]
    x0, y0 = np.clip(np.floor(mapped.min(0)).astype(int), 0, [width, height])
    x1, y1 = np.clip(np.ceil(mapped.max(0)).astype(int), 0, [width, height])
    region = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    points = landmarks68 - np.array([x0, y0], np.float32)
    if native_scale > MAX_NATIVE_SCALE:
        shrink = MAX_NATIVE_SCALE / native_scale
        size = (max(1, round(region.shape[1] * shrink)), max(1, round(region.shape[0] * shrink)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        points = (points + 0.5) * np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)], np.float32) - 0.5
    return region, points.astype(np.float32), native_scale


def encode_png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


CACHE_COLUMNS = ("source", "identity", "image_uri", "face_index", "status", "region", "landmarks", "native_scale")


class FaceCacheBuilder:
    """Ray Data batch callable: rows (uri, source, identity) -> one row per face found, or one
    row with status 'no_face' / 'decode_error' / 'too_small' per image without a usable face."""

    def __init__(self, sources: list[RealSource], storage_config: Optional[StorageConfig] = None):
        self.sources = {source.name: source for source in sources}
        self.storage_config = storage_config
        self.landmarker = Landmarker()

    def faces_of(self, uri: str, source: RealSource) -> list[tuple[str, Optional[np.ndarray], Optional[np.ndarray], float]]:
        try:
            rgb = decode_image(storage.read_bytes(uri, self.storage_config), DecodeConfig())
        except DecodeError as exc:
            return [(f"decode_error: {exc}", None, None, 0.0)]
        if source.aligned:
            padded, landmarks = self.landmarker.aligned_face(rgb)
            return [("ok", *native_region(padded, landmarks))]
        found = self.landmarker.faces(rgb, source.upsample, source.one_face)
        if not found:
            return [("no_face", None, None, 0.0)]
        out = []
        for landmarks in found:
            region, points, scale = native_region(rgb, landmarks)
            out.append(("ok" if scale >= MIN_NATIVE_SCALE and min(region.shape[:2]) > 8 else "too_small",
                        region, points, scale))
        return out

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for uri, name, identity in zip(batch["uri"], batch["source"], batch["identity"]):
            for index, (status, region, points, scale) in enumerate(self.faces_of(uri, self.sources[name])):
                usable = status == "ok"
                rows.append({"source": name, "identity": identity, "image_uri": uri, "face_index": index,
                             "status": status, "region": encode_png(region) if usable else None,
                             "landmarks": points.reshape(-1).tolist() if usable else None,
                             "native_scale": float(scale)})
        return pd.DataFrame(rows, columns=list(CACHE_COLUMNS))


def list_source(source: RealSource, storage_config: Optional[StorageConfig] = None,
                max_per_identity: Optional[int] = None) -> list[dict]:
    by_identity: dict[str, list[str]] = {}
    for uri in storage.list_files(storage.normalise(source.root), storage.IMAGE_EXTENSIONS, storage_config):
        by_identity.setdefault(source.identity_of(uri), []).append(uri)
    return [{"uri": uri, "source": source.name, "identity": identity}
            for identity in sorted(by_identity) for uri in sorted(by_identity[identity])[:max_per_identity]]


def build_face_cache(sources: list[RealSource], cache_uri: str, storage_config: Optional[StorageConfig] = None,
                     max_per_identity: Optional[int] = None, batch_size: int = 64) -> dict:
    """Writes the cache (Parquet + CACHE_MANIFEST) unless one for the same sources exists;
    returns its manifest (counts per source)."""
    import ray.data

    key = {"sources": sorted((vars(source) for source in sources), key=lambda v: v["name"]),
           "max_per_identity": max_per_identity}
    manifest_uri = storage.join(cache_uri, CACHE_MANIFEST)
    if storage.exists(manifest_uri, storage_config):
        manifest = json.loads(storage.read_bytes(manifest_uri, storage_config))
        if manifest["key"] == key:
            log.info("face cache %s reused (%d faces)", cache_uri, manifest["faces"])
            return manifest
        raise ValueError(f"{cache_uri} holds a face cache of other sources; pick another --cache")
    if storage.exists(storage.join(cache_uri, "faces"), storage_config):
        storage.delete_dir(storage.join(cache_uri, "faces"), storage_config)  # an interrupted build
    items = [item for source in sources for item in list_source(source, storage_config, max_per_identity)]
    if not items:
        raise ValueError(f"no images under {[source.root for source in sources]}")
    rng = np.random.default_rng(0)
    items = [items[i] for i in rng.permutation(len(items))]  # mixes sources and identities in every block
    dataset = ray.data.from_items(items).map_batches(
        FaceCacheBuilder, fn_constructor_kwargs={"sources": sources, "storage_config": storage_config},
        batch_format="pandas", batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.5)
    dataset.write_parquet(storage.join(cache_uri, "faces"))
    table = ray.data.read_parquet(storage.join(cache_uri, "faces"),
                                  columns=["source", "identity", "image_uri", "status"]).to_pandas()
    per_source = {}
    for source in sources:
        rows = table[table["source"] == source.name]
        ok = rows[rows["status"] == "ok"]
        per_source[source.name] = {
            "root": source.root, "images_listed": int(sum(1 for i in items if i["source"] == source.name)),
            "images_with_faces": int(ok["image_uri"].nunique()), "faces": int(len(ok)),
            "identities": int(ok["identity"].nunique()),
            "rejected": dict(Counter(str(status).split(":")[0] for status in rows["status"] if status != "ok"))}
    manifest = {"key": key, "faces": int((table["status"] == "ok").sum()), "sources": per_source}
    storage.write_bytes(manifest_uri, json.dumps(manifest, indent=2).encode(), storage_config)
    return manifest


def read_faces(cache_uri: str, columns: Optional[list[str]] = None):
    """The usable faces of a cache as a Ray Dataset."""
    import ray.data

    # Light reads: the training worker and the pair-making actor hold most of a small node's CPUs.
    return ray.data.read_parquet(storage.join(cache_uri, "faces"), columns=columns, num_cpus=READ_CPUS).filter(
        expr="status == 'ok'", num_cpus=READ_CPUS)
