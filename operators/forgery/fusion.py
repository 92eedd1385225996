"""Fusion of forgery signals into one calibrated probability, and its versioned JSON artefact.

Two heads: ``vip`` (artefact + identity signals) for faces with a VIP candidate, ``generic``
(artefact signals only) for the rest. Each is a logistic regression fitted by jobs.calibrate on
a labelled set, with a verdict threshold at a target false-alarm rate on its authentic faces.
The default (ForgeryConfig.fusion_model) is the artefact shipped in ``artefacts/``, fitted by
``python -m jobs.forgery_benchmark --write-fusion`` at a stated forgery prior (docs/forgery.md).
Only when asked for explicitly (fusion_model "uncalibrated" or None), ``Uncalibrated`` squashes
the signals by hand: a ranking, not a probability, and forgery_model says so.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from core import storage

FORMAT = "vipwatch-forgery-fusion"
FUSION_FILE, MANIFEST_FILE = "fusion.json", "manifest.json"
# Shipped artefacts live inside the package, so an installed wheel or image carries them.
ARTEFACTS_DIR = Path(__file__).resolve().parent / "artefacts"
UNCALIBRATED, SHIPPED = "uncalibrated", "shipped"
# Names the shipped artefact directory under ARTEFACTS_DIR; jobs.forgery_benchmark --write-fusion
# rewrites it beside the new version. "DEFAULT.<family>" (e.g. DEFAULT.dlib), where present, names
# the one for that pack family: identity signals are spreads of the pack's own cosines, and a fusion
# fitted on another embedder's spreads ranks and calibrates worse (docs/forgery.md "A fusion per
# pack family"). "DEFAULT.<family>+<embedder_id>" names the one fitted with that second pack
# (ForgeryConfig.second_pack): a fusion without its signals would compute them for nothing.
DEFAULT_POINTER = "DEFAULT"
# Identity signals of unusual faces reach tens of spreads; bound them so one row cannot dominate.
FEATURE_CLIP = (-10.0, 30.0)


# "present:<signal>" is 1 when the row has that signal, else 0: which signals a face has says how
# it was judged (a matched VIP face has deficits, a weak candidate only gaps; a face too small to
# judge has no artefact score), and a head must not read a filled-in value as a measured one.
PRESENT = "present:"


def row_value(name: str, row: dict[str, float]) -> float:
    """A feature of one scorer row in model space; NaN when the row lacks the signal."""
    if name.startswith(PRESENT):
        return 1.0 if name[len(PRESENT):] in row else 0.0
    return feature_value(name, row[name]) if name in row else math.nan


def feature_value(name: str, value: float) -> float:
    """Artefact probabilities enter as log-odds; identity deficits as they are, clipped."""
    if name.startswith("artefact:"):
        p = min(max(float(value), 1e-4), 1 - 1e-4)
        return math.log(p / (1 - p))
    return float(np.clip(value, *FEATURE_CLIP))


@dataclass
class Head:
    features: list[str]
    coef: list[float]  # one per column: features, then indicators
    intercept: float
    threshold: float
    # Model-space value of a feature a row lacks (its mean on the fitting rows); None: required.
    fill: Optional[list[float]] = None
    # Signals whose presence (1/0) enters after the features (see PRESENT).
    indicators: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.features) + [PRESENT + s for s in self.indicators]

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """Model-space columns (feature_value applied; indicators 0/1), NaN where missing."""
        x = np.asarray(x, np.float64).reshape(len(x), len(self.columns))
        if self.fill is not None:
            x = np.where(np.isfinite(x), x, np.asarray(self.fill, np.float64))
        z = x @ np.asarray(self.coef, np.float64) + self.intercept
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def predict(self, rows: list[dict[str, float]]) -> np.ndarray:
        if not rows:
            return np.zeros(0, np.float32)
        if self.fill is None:  # heads written before fill values: every signal required
            x = [[feature_value(f, r[f]) for f in self.features] for r in rows]
        else:
            x = [[row_value(f, r) for f in self.columns] for r in rows]
        return self.predict_matrix(np.array(x, np.float64))


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
        """A fusion JSON file, or an artefact directory (fusion.json + manifest.json whose sha256
        must match)."""
        if not uri.endswith(".json"):
            manifest = json.loads(storage.read_bytes(storage.join(uri, MANIFEST_FILE), storage_config))
            raw = storage.read_bytes(storage.join(uri, FUSION_FILE), storage_config)
            if hashlib.sha256(raw).hexdigest() != manifest.get("fusion_sha256"):
                raise ValueError(f"{uri}: {FUSION_FILE} does not match the sha256 in its {MANIFEST_FILE}")
        else:
            raw = storage.read_bytes(uri, storage_config)
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise ValueError(f"{uri} is not a {FORMAT} artefact")
        heads = {k: Head(**v) for k, v in data.pop("heads").items()}
        version, calibrated = data.pop("version"), data.pop("calibrated")
        data.pop("format")
        return cls(heads=heads, version=version, calibrated=calibrated, metadata=data)

    def head(self, vip: bool) -> Optional[Head]:
        return self.heads.get("vip" if vip else "generic")


def load_fusion(spec: Optional[str], storage_config=None, pack_name: Optional[str] = None,
                second_embedder_id: Optional[str] = None):
    """ForgeryConfig.fusion_model -> the fusion: an artefact (file or directory) or, only when
    named explicitly ("uncalibrated" or None), the hand-made ranking. "shipped" takes the shipped
    artefact of ``pack_name``'s family (a pack's name or a ModelPackConfig.pack spec) and, with a
    second pack, of that pack's embedder."""
    if spec is None or spec == UNCALIBRATED:
        return Uncalibrated()
    if spec == SHIPPED:
        spec = str(shipped_fusion_dir(pack_family(pack_name), second_embedder_id))
    return FusionModel.load(spec, storage_config)


def fitted_detectors(fusion) -> list[str]:
    """The detector specs a fusion artefact was fitted with (empty for the hand-made ranking)."""
    return list(getattr(fusion, "metadata", {}).get("scorer", {}).get("detectors") or [])


def detector_specs(detectors: Optional[list[str]], fusion_spec: Optional[str], storage_config=None,
                   pack_name: Optional[str] = None, second_embedder_id: Optional[str] = None) -> list[str]:
    """ForgeryConfig.detectors resolved: as given, or (None) the configured fusion's."""
    if detectors is not None:
        return list(detectors)
    return fitted_detectors(load_fusion(fusion_spec, storage_config, pack_name=pack_name,
                                        second_embedder_id=second_embedder_id))


def pack_family(pack_name: Optional[str]) -> Optional[str]:
    """"dlib" for the dlib packs (name "dlib-hog+...", spec "dlib" / "dlib:cnn"); None for the rest."""
    return "dlib" if pack_name and pack_name.startswith("dlib") else None


def embedder_of(pack_name: str) -> str:
    """A loaded pack's embedder_id from its name ("dlib-hog+<id>", "onnx:<detector>+<id>")."""
    return pack_name.rsplit("+", 1)[-1]


def pointer_name(family: Optional[str], second_embedder_id: Optional[str] = None) -> str:
    name = DEFAULT_POINTER if family is None else f"{DEFAULT_POINTER}.{family}"
    return name if second_embedder_id is None else f"{name}+{second_embedder_id}"


def shipped_fusion_dir(family: Optional[str] = None, second_embedder_id: Optional[str] = None) -> Path:
    """The shipped artefact for a pack family (the family-less DEFAULT when it has none) or, with
    a second pack, the one fitted with that pack's embedder; there is no fallback for the latter."""
    if second_embedder_id is not None:
        pointer = ARTEFACTS_DIR / pointer_name(family, second_embedder_id)
        if not pointer.is_file():
            shipped = sorted(p.name for p in ARTEFACTS_DIR.glob(f"{DEFAULT_POINTER}*+*"))
            raise ValueError(f"no shipped fusion was fitted on the {family or 'onnx'} pack with "
                             f"{second_embedder_id} as the second pack (shipped pairs: {shipped}); name one "
                             f"with --forgery-fusion (jobs.forgery_benchmark --second-pack ... --write-fusion)")
        return ARTEFACTS_DIR / pointer.read_text().strip()
    pointer = ARTEFACTS_DIR / pointer_name(family)
    if not pointer.is_file():
        pointer = ARTEFACTS_DIR / DEFAULT_POINTER
    return ARTEFACTS_DIR / pointer.read_text().strip()


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
                           for k in ("identity_deficit", "inner_deficit", "inner_whole_gap", "context_deficit") if k in r]
            out.append(max(values) if values else math.nan)
        return np.asarray(out, np.float32)
