"""Small image helpers shared by the gallery artefact and the alerts table."""
from __future__ import annotations

import cv2
import numpy as np


def encode_jpeg(raw_rgb: bytes, size: int = 112) -> bytes:
    """A size x size RGB crop (raw bytes) as JPEG: small enough to store beside every reference and alert."""
    rgb = np.frombuffer(raw_rgb, dtype=np.uint8).reshape(size, size, 3)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return encoded.tobytes()
