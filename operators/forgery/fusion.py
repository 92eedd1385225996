"""Fusion of forgery signals into one calibrated probability, and its versioned JSON artefact.

Two heads: ``vip`` (artefact + identity signals) for faces with a VIP candidate, ``generic``
(artefact signals only) for the rest. Each is a logistic regression fitted by jobs.calibrate on
a labelled validation set, with a verdict threshold at a target false-alarm rate on its
authentic faces. Without an artefact, ``UNCALIBRATED`` squashes the signals by hand: a ranking,
not a probability, and forgery_model says so.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from core import storage

FORMAT = "vipwatch-forgery-fusion"
# Identity signals of unusual faces reach tens of spreads; bound them so one row cannot dominate.
FEATURE_CLIP = (-10.0, 30.0)


def feature_value(name: str, value: float) -> float:
    """Artefact probabilities enter as log-odds; identity deficits as they are, clipped."""
    if name.startswith("artefact:"):
        p = min(max(float(value), 1e-4), 1 - 1e-4)
        return math.log(p / (1 - p))
    return float(np.clip(value, *FEATURE_CLIP))


@dataclass
class Head:
    features: list[str]
    coef: list[float]
    intercept: float
    threshold: float

    def predict(self, rows: list[dict[str, float]]) -> np.ndarray:
        if not rows:
            return np.zeros(0, np.float32)
        x = np.array([[feature_value(f, r[f]) for f in self.features] for r in rows], np.float64).reshape(len(rows), -1)
        z = x @ np.asarray(self.coef, np.float64) + self.intercept
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


@dataclass
class FusionModel:
    heads: dict[str, Head]
    version: str
    calibrated: bool = True
    metadata: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": self.version, "calibrated": self.calibrated,
                "heads": {k: vars(h) for k, h in self.heads.items()}, **self.metadata}

    def save(self, uri: str, storage_config=None) -> None:
        storage.write_bytes(uri, json.dumps(self.to_json(), indent=2).encode(), storage_config)

    @classmethod
    def load(cls, uri: str, storage_config=None) -> "FusionModel":
        data = json.loads(storage.read_bytes(uri, storage_config))
        if data.get("format") != FORMAT:
            raise ValueError(f"{uri} is not a {FORMAT} artefact")
        heads = {k: Head(**v) for k, v in data.pop("heads").items()}
        version, calibrated = data.pop("version"), data.pop("calibrated")
        data.pop("format")
        return cls(heads=heads, version=version, calibrated=calibrated, metadata=data)

    def head(self, vip: bool) -> Optional[Head]:
        return self.heads.get("vip" if vip else "generic")


def fusion_version(payload: dict) -> str:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]
    return f"fusion-lr@{digest}"


class Uncalibrated:
    """Fallback without a calibration artefact: the most alarming signal, each squashed to
    [0, 1] by hand (identity deficits: 0.5 at 3 spreads). Not a probability."""

    version = "fusion-uncalibrated-v1"
    calibrated = False
    threshold = 0.5

    def predict(self, rows: list[dict[str, float]], vip: bool) -> np.ndarray:
        out = []
        for r in rows:
            values = [v for k, v in r.items() if k.startswith("artefact:")]
            if vip:
                values += [1 / (1 + math.exp(-(np.clip(r[k], -30, 30) - 3.0)))
                           for k in ("identity_deficit", "inner_whole_gap", "context_deficit") if k in r]
            out.append(max(values) if values else math.nan)
        return np.asarray(out, np.float32)
