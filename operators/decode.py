"""ImageDecoder: raw bytes -> RGB pixels, on CPU, one row per image or per sampled video frame.

Every input yields at least one row: anything unreadable becomes an ``error`` row whose
``error`` says why, so counts in equal counts out.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from typing import Any, Iterator

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import DecodeConfig
from core.schema import STATUS_ERROR, STATUS_OK, table_from_rows
from core.storage import VIDEO_EXTENSIONS

# We check declared size ourselves (max_decode_pixels) and give a reason instead of a warning.
Image.MAX_IMAGE_PIXELS = None

DECODED_SCHEMA = pa.schema([
    ("image_uri", pa.string()), ("image_sha256", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("media_type", pa.string()), ("frame_index", pa.int32()), ("timestamp_s", pa.float64()),
    ("image_width", pa.int32()), ("image_height", pa.int32()), ("pixels", pa.large_binary()),
    ("pixel_width", pa.int32()), ("pixel_height", pa.int32()),
])



class DecodeError(ValueError):
    """An input that cannot be read as an image; the message is the row's ``error``."""


HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
AVIF_BRANDS = (b"avif", b"avis")


def sniff_image_format(data: bytes) -> str | None:
    """The still-image format the bytes start with, whatever the file is called."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[4:8] == b"ftyp" and data[8:12] in AVIF_BRANDS:
        return "avif"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heif"
    return None


def looks_like_video(uri: str, data: bytes) -> bool:
    # Content decides before the extension: a JPEG named .mp4 is still a JPEG.
    if sniff_image_format(data):
        return False
    if data[4:8] == b"ftyp":  # ISO media that is not an AVIF/HEIF still: MP4/MOV
        return True
    if data[:4] == b"\x1aE\xdf\xa3":  # Matroska / WebM
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return True
    return os.path.splitext(uri)[1].lower() in VIDEO_EXTENSIONS


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit / float grey: PIL's convert('RGB') clips at 255; scale the range instead.
        grey = np.nan_to_num(np.asarray(image, dtype=np.float64))
        top = 65535.0 if image.mode.startswith("I;16") else max(float(grey.max()), 1.0)
        grey = np.clip(grey / top * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels over white, as a browser shows them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    # convert() copies even when the mode is already RGB.
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def decode_image(data: bytes, config: DecodeConfig) -> np.ndarray:
    """Bytes -> RGB uint8 (EXIF orientation applied, first frame of an animation)."""
    if not data:
        raise DecodeError("empty file: 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > config.max_decode_pixels:
                raise DecodeError(f"image too large: declared {width}x{height} = {width * height} pixels "
                                  f"> limit {config.max_decode_pixels} (possible decompression bomb)")
            if width < 1 or height < 1:
                raise DecodeError(f"image has no pixels: {width}x{height}")
            image.seek(0)  # first frame of an animation
            image.load()
            return _to_rgb_array(_apply_orientation(image))
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError(_unidentified_reason(data)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(f"truncated or corrupt image data: {exc}") from None


def _apply_orientation(image: Image.Image) -> Image.Image:
    """EXIF Orientation applied, so faces stand upright for the detector. Broken EXIF is not a
    reason to lose readable pixels: the image is then used as stored."""
    try:
        # In place: without an Orientation tag, exif_transpose would return a full copy.
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:
        pass
    return image


def _unidentified_reason(data: bytes) -> str:
    # Stable text before the colon: summaries group errors by it.
    fmt = sniff_image_format(data)
    if fmt == "heif":
        return ("unsupported image format: HEIC/HEIF, and no HEIF decoder is installed "
                f"(pillow-heif) ({len(data)} bytes)")
    if fmt:
        return f"truncated or corrupt image data: {fmt.upper()} signature but unreadable ({len(data)} bytes)"
    head = data[:256].lstrip().lower()
    texty = all(32 <= b < 127 or b in (9, 10, 13) for b in data[:256])
    kind = "HTML/text" if head.startswith((b"<", b"{")) or texty else "unknown binary"
    return f"not a decodable image: {kind} content ({len(data)} bytes)"


def decode_video_frames(data: bytes, config: DecodeConfig) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame_index, timestamp_s, RGB) every ``video_frame_interval_s`` seconds."""
    with tempfile.NamedTemporaryFile(suffix=".video") as handle:
        handle.write(data)
        handle.flush()
        capture = cv2.VideoCapture(handle.name)
        try:
            if not capture.isOpened():
                raise DecodeError(f"not a decodable video: FFmpeg/OpenCV cannot open it, corrupt or unsupported "
                                  f"container ({len(data)} bytes)")
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            check_video_limits(capture, fps, config)
            step = max(1, int(round(fps * config.video_frame_interval_s)))
            frame_index, emitted = 0, 0
            while emitted < config.video_max_frames:
                ok, frame = capture.read()
                if not ok:
                    break
                if frame_index % step == 0:
                    emitted += 1
                    yield frame_index, frame_index / fps, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                frame_index += 1
            if emitted == 0:
                raise DecodeError(f"not a decodable video: no frame could be decoded ({len(data)} bytes)")
        finally:
            capture.release()


def check_video_limits(capture: cv2.VideoCapture, fps: float, config: DecodeConfig) -> None:
    """Refuse from the container's declared frame size, frame count and length, before decoding.
    The messages' fixed prefixes ("video too ...") tell Serve which client error it is."""
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > config.video_max_pixels_per_frame:
        raise DecodeError(f"video too large: frames of {width}x{height} = {width * height} pixels "
                          f"> limit {config.video_max_pixels_per_frame}")
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if frames > config.video_max_source_frames:
        raise DecodeError(f"video too many frames: {frames} > limit {config.video_max_source_frames}")
    if frames / fps > config.video_max_duration_s:
        raise DecodeError(f"video too long: {frames / fps:.1f} s > limit {config.video_max_duration_s:g} s")


class ImageDecoder:
    """Batch of {path, bytes[, read_error]} -> batch of decoded rows (DECODED_COLUMNS). Stateless: runs as
    Ray Data tasks, and directly in the Serve app."""

    def __init__(self, config: DecodeConfig | None = None, uri_prefix: str = ""):
        self.config = config or DecodeConfig()
        # The crawl's reader gives 'bucket/key' for S3: the prefix restores 's3://'.
        self.uri_prefix = uri_prefix

    def __call__(self, batch: pa.Table | pd.DataFrame) -> pa.Table:
        columns = batch if isinstance(batch, pd.DataFrame) else \
            {name: batch.column(name).to_pylist() for name in batch.column_names}
        paths, blobs = columns["path"], columns["bytes"]
        # The crawl's reader says why an input has no bytes (gone, too large): vipwatch/crawl/reader.py.
        read_errors = columns["read_error"] if "read_error" in columns else [None] * len(paths)
        rows: list[dict[str, Any]] = []
        for path, data, read_error in zip(paths, blobs, read_errors):
            uri = self.uri_prefix + str(path)
            if read_error:
                rows.append(self.unread_row(uri, read_error))
            else:
                rows.extend(self.decode_one(uri, bytes(data or b"")))
        return table_from_rows(rows, DECODED_SCHEMA)

    @staticmethod
    def _row(uri: str, sha256: str | None) -> dict[str, Any]:
        return {"image_uri": uri, "image_sha256": sha256, "status": STATUS_OK, "error": None,
                "media_type": "image", "frame_index": None, "timestamp_s": None, "image_width": None,
                "image_height": None, "pixels": None, "pixel_width": None, "pixel_height": None}

    def unread_row(self, uri: str, reason: str) -> dict[str, Any]:
        return {**self._row(uri, None), "status": STATUS_ERROR, "error": reason}

    def decode_one(self, uri: str, data: bytes) -> list[dict[str, Any]]:
        base = self._row(uri, hashlib.sha256(data).hexdigest())
        try:
            if len(data) > self.config.max_bytes:
                raise DecodeError(f"file too large: {len(data)} bytes > limit {self.config.max_bytes}")
            if data and looks_like_video(uri, data):
                base["media_type"] = "video"
                return [self._frame_row(base, rgb, frame_index=index, timestamp_s=ts)
                        for index, ts, rgb in decode_video_frames(data, self.config)]
            return [self._frame_row(base, decode_image(data, self.config))]
        except DecodeError as exc:
            return [{**base, "status": STATUS_ERROR, "error": str(exc)}]
        except Exception as exc:  # a decoder bug must not lose the input either
            return [{**base, "status": STATUS_ERROR, "error": f"decode failed: {type(exc).__name__}: {exc}"}]

    def _frame_row(self, base: dict, rgb: np.ndarray, **extra) -> dict[str, Any]:
        height, width = rgb.shape[:2]
        longest = max(height, width)
        if longest > self.config.max_side:
            factor = self.config.max_side / longest
            rgb = cv2.resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))),
                             interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        return {**base, **extra, "image_width": width, "image_height": height, "pixels": rgb.tobytes(),
                "pixel_width": rgb.shape[1], "pixel_height": rgb.shape[0]}


def pixels_of(row: Any) -> np.ndarray:
    return np.frombuffer(row["pixels"], dtype=np.uint8).reshape(int(row["pixel_height"]), int(row["pixel_width"]), 3)
