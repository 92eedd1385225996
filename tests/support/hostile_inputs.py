"""Generates hostile and odd inputs for the decoder and crawl tests.

Each case is built from real photos in ../shared where a face matters, so the tests can tell
"read" from "read correctly" (a face is found) rather than only "did not crash".
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image, features

from core.config import SHARED_DIR

FACE_PHOTO = SHARED_DIR / "data" / "photos" / "face_recognition" / "obama.jpg"
SECOND_FACE_PHOTO = SHARED_DIR / "data" / "photos" / "face_recognition" / "biden.jpg"

READ_FACE = "face"        # decodes, and the face in it must be found
READ_NO_FACE = "no_face"  # decodes, has no face (1x1, flat colour)
READ = "read"             # decodes; faces not asserted
ERROR = "error"           # must be an error row whose reason contains `reason`


@dataclass
class Case:
    name: str
    data: bytes
    expect: str
    reason: Optional[str] = None  # substring of the error reason (lower case)
    media_type: str = "image"


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    sink = io.BytesIO()
    image.save(sink, format=fmt, **kwargs)
    return sink.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_declared_png(width: int = 200_000, height: int = 200_000) -> bytes:
    """A valid PNG header declaring 40 G pixels with almost no data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def bomb_png(side: int = 10_000) -> bytes:
    """A real, complete decompression bomb: ~100 kB on disk, side*side grey pixels when decoded."""
    row = b"\x00" + b"\x00" * side  # filter byte + zero pixels
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def huge_declared_jpeg(face_jpeg: bytes, width: int = 65_000, height: int = 65_000) -> bytes:
    """A real JPEG whose SOF marker is rewritten to declare 65000x65000."""
    data = bytearray(face_jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            data[at + 5:at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise ValueError("no SOF marker")


def exif_rotated_jpeg(photo: Image.Image) -> bytes:
    """Pixels stored rotated 90 degrees counter-clockwise, with EXIF Orientation=6 ("rotate 90
    clockwise to view"): a viewer that honours EXIF shows the face upright, one that ignores it
    shows it sideways."""
    stored = photo.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def animated_gif(face: Image.Image) -> bytes:
    frames = [face.convert("P", palette=Image.Palette.ADAPTIVE)]
    frames += [Image.new("P", face.size, colour) for colour in (10, 200)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def small_video(face: Image.Image, frames: int = 6) -> Optional[bytes]:
    """A short MJPEG AVI of the face photo, or None if this OpenCV build cannot write one."""
    import tempfile

    bgr = cv2.cvtColor(np.asarray(face.convert("RGB")), cv2.COLOR_RGB2BGR)
    height, width = bgr.shape[:2]
    with tempfile.NamedTemporaryFile(suffix=".avi") as handle:
        writer = cv2.VideoWriter(handle.name, cv2.VideoWriter_fourcc(*"MJPG"), 2.0, (width, height))
        if not writer.isOpened():
            return None
        for _ in range(frames):
            writer.write(bgr)
        writer.release()
        return Path(handle.name).read_bytes()


def make_cases() -> list[Case]:
    photo = Image.open(FACE_PHOTO).convert("RGB")
    photo.thumbnail((640, 640))
    face_jpeg = _encode(photo, "JPEG", quality=90)
    face_png = _encode(photo, "PNG")
    rng = np.random.default_rng(7)
    grey16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    rgba_array = np.asarray(photo.convert("RGBA")).copy()
    rgba_array[:40, :, 3] = 0  # a transparent band: composited over white
    cases = [
        Case("zero_bytes.jpg", b"", ERROR, "empty file"),
        Case("truncated.jpg", face_jpeg[: len(face_jpeg) // 2], ERROR, "truncated"),
        Case("truncated.png", face_png[: len(face_png) // 2], ERROR, "truncated"),
        Case("jpeg_named.png", face_jpeg, READ_FACE),
        Case("random_bytes.jpg", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), ERROR, "not a decodable image"),
        Case("page.png", b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>gone</body></html>\n",
             ERROR, "html"),
        Case("one_pixel.png", _encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), READ_NO_FACE),
        Case("huge_declared.png", huge_declared_png(), ERROR, "too large"),
        Case("huge_declared.jpg", huge_declared_jpeg(face_jpeg), ERROR, "too large"),
        Case("bomb.png", bomb_png(), ERROR, "decompression bomb"),
        Case("animated.gif", animated_gif(photo), READ_FACE),
        Case("palette.gif", _encode(photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "GIF"), READ_FACE),
        Case("cmyk.jpg", _encode(photo.convert("CMYK"), "JPEG", quality=92), READ_FACE),
        Case("grey16.png", _encode(Image.fromarray(grey16), "PNG"), READ_FACE),
        Case("grey.jpg", _encode(photo.convert("L"), "JPEG", quality=92), READ_FACE),
        Case("rgba.png", _encode(Image.fromarray(rgba_array, "RGBA"), "PNG"), READ_FACE),
        Case("exif_rotated.jpg", exif_rotated_jpeg(photo), READ_FACE),
        Case("photo.webp", _encode(photo, "WEBP", quality=90), READ_FACE),
        Case("corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(),
             ERROR, "video", media_type="video"),
        # No HEIF decoder here: the reason must say so rather than "unknown binary".
        Case("fake.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, ERROR, "heif"),
        Case("name with spaces.jpg", face_jpeg, READ_FACE),
    ]
    if features.check("avif"):
        cases.append(Case("photo.avif", _encode(photo, "AVIF", quality=80), READ_FACE))
    video = small_video(photo)
    if video is not None:
        cases.append(Case("clip.avi", video, READ_FACE, media_type="video"))
    return cases


def write_cases(directory: Path, cases: Optional[list[Case]] = None) -> list[Case]:
    cases = cases if cases is not None else make_cases()
    directory.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (directory / case.name).write_bytes(case.data)
    return cases
