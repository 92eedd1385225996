"""A crawl-like corpus from ../shared photos: mixed sizes and formats, background crops with no
face, truncated files. Deterministic for (count, seed), cached on local disk."""
from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import numpy as np

from core.schema import STATUS_OK
from operators.decode import ImageDecoder, pixels_of

log = logging.getLogger(__name__)

PHOTOS_SUBDIR = ("data", "photos")
LONG_SIDES = (320, 480, 640, 800, 1024, 1280, 1600, 2048)
NO_FACE_FRACTION = 0.12
TRUNCATED_FRACTION = 0.01
CORPUS_FORMAT_VERSION = 2  # bump when the generator changes, so cached corpora are rebuilt
# Drawn uniformly from this list: half JPEG, a third WebP, a sixth PNG.
FORMATS = ("jpg", "jpg", "jpg", "webp", "webp", "png")


def _source_photos(shared: Path) -> list[Path]:
    root = shared.joinpath(*PHOTOS_SUBDIR)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _background_crop(rgb: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator):
    """A crop that overlaps no detected face (boxes grown by half their size), or None."""
    height, width = rgb.shape[:2]
    grown = []
    for x1, y1, x2, y2 in boxes:
        pad_x, pad_y = (x2 - x1) / 2, (y2 - y1) / 2
        grown.append((x1 - pad_x, y1 - pad_y, x2 + pad_x, y2 + pad_y))
    for _ in range(60):
        crop_w = int(width * rng.uniform(0.2, 0.5))
        crop_h = int(height * rng.uniform(0.2, 0.5))
        if min(crop_w, crop_h) < 64:
            continue
        x, y = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        if all(x + crop_w <= gx1 or gx2 <= x or y + crop_h <= gy1 or gy2 <= y for gx1, gy1, gx2, gy2 in grown):
            return rgb[y:y + crop_h, x:x + crop_w]
    return None


def _encode(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    from PIL import Image

    sink = io.BytesIO()
    image = Image.fromarray(rgb)
    if fmt == "jpg":
        image.save(sink, "JPEG", quality=quality)
    elif fmt == "webp":
        image.save(sink, "WEBP", quality=quality, method=0)
    else:
        image.save(sink, "PNG", compress_level=1)
    return sink.getvalue()


def _has_face(data: bytes, pack) -> bool:
    """Whether the crawl would find a face: its own decoder, then the pack's detector."""
    row = ImageDecoder().decode_one("corpus", data)[0]
    return row["status"] == STATUS_OK and len(pack.detect(pixels_of(row))) > 0


def _resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    factor = long_side / max(height, width)
    if abs(factor - 1) < 1e-3:
        return rgb
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=interpolation)


def build_corpus(count: int, out_dir: Path, shared: Path, pack, seed: int = 0,
                 no_face_fraction: float = NO_FACE_FRACTION, truncated_fraction: float = TRUNCATED_FRACTION) -> dict:
    """Write ``count`` images to out_dir (flat); returns the mix. Deterministic for (count, seed).

    A file's name says what it is, so that its rows can be checked against it:
    ``img<number>_<photo|background>[_truncated]_<source stem>.<jpg|webp|png>``, where a
    background image is a crop away from the source's faces in which the detector finds none."""
    rng = np.random.default_rng(seed)
    sources = _source_photos(shared)
    pixels = [_load_rgb(p) for p in sources]
    # Faces are found once per source photo so that background crops can avoid them.
    boxes = [[d.bbox for d in pack.detect(rgb)] for rgb in pixels]
    out_dir.mkdir(parents=True, exist_ok=True)
    mix = {"jpg": 0, "png": 0, "webp": 0, "background": 0, "truncated": 0}
    for number in range(count):
        source = int(rng.integers(len(sources)))
        rgb = pixels[source]
        kind = "photo"
        if rng.random() < no_face_fraction:
            crop = _background_crop(rgb, boxes[source], rng)
            if crop is not None:
                rgb, kind = crop, "background"
                mix["background"] += 1
        long_side = int(rng.choice(LONG_SIDES))
        # Background crops and small sources are not blown up past 1.5x: crawls rarely upscale.
        long_side = min(long_side, int(1.5 * max(rgb.shape[:2])))
        rgb = _resize_long_side(rgb, max(64, long_side))
        fmt = str(rng.choice(FORMATS))
        data = _encode(rgb, fmt, int(rng.integers(60, 96)))
        mix[fmt] += 1
        if kind == "background" and _has_face(data, pack):
            # Faces too small to be found in the source can be found once a crop is enlarged
            # (crowds): such a crop is kept, named as a photo.
            kind = "photo"
            mix["background"] -= 1
        if rng.random() < truncated_fraction:
            data = data[: len(data) // 3]
            mix["truncated"] += 1
            kind += "_truncated"
        (out_dir / f"img{number:06d}_{kind}_{sources[source].stem}.{fmt}").write_bytes(data)
    (out_dir / "_COMPLETE").write_text(json.dumps(mix))
    return mix


def cached_corpus(count: int, cache_root: Path, shared: Path, pack, seed: int) -> tuple[Path, dict]:
    directory = cache_root / f"corpus-v{CORPUS_FORMAT_VERSION}-n{count}-s{seed}"
    marker = directory / "_COMPLETE"
    if marker.exists():
        return directory, json.loads(marker.read_text())
    started = time.perf_counter()
    mix = build_corpus(count, directory, shared, pack, seed)
    log.info("corpus of %d images generated in %.1f s: %s", count, time.perf_counter() - started, mix)
    return directory, mix
