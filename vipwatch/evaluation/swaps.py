"""A VIP-targeted fake set for development: for each identity X, N classical face swaps showing X's
inner face on another identity's head (fake/<X>/<name>.png), and N untouched crops of X
(real/<X>/<name>.png), plus labels.csv. Reals and fakes are both decoded to RGB and written as
PNG by the same encoder, so the file format is no cue. The first K crops of each identity
(sorted by name: the gallery's enrolment) are never used, and a real never shares its image
with a fake's inner-face source.
"""
from __future__ import annotations

import csv
import io
import logging

import cv2
import numpy as np

from operators.forgery.face_swap import BLENDS, swap_face
from core import storage
from core.config import StorageConfig
from core.storage import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)
LABEL_FIELDS = ["uri", "label", "identity", "source_identity", "target_identity", "source_uri", "target_uri", "blend"]


def read_rgb(uri: str, storage_config: StorageConfig | None) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(storage.read_bytes(uri, storage_config), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"not a decodable image: {uri}")
    if bgr.shape[:2] != (112, 112):
        bgr = cv2.resize(bgr, (112, 112), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def held_out_crops(root: str, skip_first: int, storage_config: StorageConfig | None) -> dict[str, list[str]]:
    root = storage.normalise(root)
    crops: dict[str, list[str]] = {}
    for uri in storage.list_files(root, IMAGE_EXTENSIONS, storage_config):
        relative = uri[len(root):].lstrip("/")
        if "/" in relative:
            crops.setdefault(relative.split("/", 1)[0], []).append(uri)
    return {identity: sorted(uris)[skip_first:] for identity, uris in sorted(crops.items())
            if len(uris) > skip_first + 1}


def make_swaps(aligned_root: str, out: str, per_identity: int = 20, seed: int = 0, skip_first: int = 10,
               storage_config: StorageConfig | None = None) -> dict:
    rng = np.random.default_rng(seed)
    crops = held_out_crops(aligned_root, skip_first, storage_config)
    if len(crops) < 2:
        raise ValueError(f"need at least 2 identities with held-out crops under {aligned_root}")
    identities = list(crops)
    labels: list[dict] = []
    for identity in identities:
        shuffled = list(rng.permutation(crops[identity]))
        # Half the held-out crops give reals, the other half inner-face sources (reused if few).
        split = max(1, len(shuffled) // 2)
        reals, sources = shuffled[:split][:per_identity], shuffled[split:]
        for uri in reals:
            name = uri.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            out_uri = storage.join(out, "real", identity, f"{name}.png")
            storage.write_bytes(out_uri, png_bytes(read_rgb(uri, storage_config)), storage_config)
            labels.append({"uri": out_uri, "label": "real", "identity": identity, "source_identity": identity,
                           "target_identity": identity, "source_uri": uri, "target_uri": uri, "blend": ""})
        others = [i for i in identities if i != identity]
        for number in range(per_identity):
            source_uri = sources[number % len(sources)]
            target_identity = others[rng.integers(len(others))]
            target_uri = crops[target_identity][rng.integers(len(crops[target_identity]))]
            blend = BLENDS[number % len(BLENDS)]
            fake = swap_face(read_rgb(source_uri, storage_config), read_rgb(target_uri, storage_config), blend, rng)
            out_uri = storage.join(out, "fake", identity, f"{number:03d}_{target_identity}.png")
            storage.write_bytes(out_uri, png_bytes(fake), storage_config)
            labels.append({"uri": out_uri, "label": "fake", "identity": identity, "source_identity": identity,
                           "target_identity": target_identity, "source_uri": source_uri, "target_uri": target_uri,
                           "blend": blend})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LABEL_FIELDS)
    writer.writeheader()
    writer.writerows(labels)
    storage.write_bytes(storage.join(out, "labels.csv"), text.getvalue().encode(), storage_config)
    summary = {"out": out, "identities": len(identities), "seed": seed, "skip_first": skip_first,
               "real": sum(r["label"] == "real" for r in labels), "fake": sum(r["label"] == "fake" for r in labels)}
    log.info("swap set written: %s", summary)
    return summary
