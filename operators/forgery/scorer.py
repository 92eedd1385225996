"""ForgeryScorer: fills forgery_score / verdict / reasons / forgery_signals / forgery_model on
WORK_SCHEMA face rows, after GalleryMatcher. Holds the artefact detectors, the embedder (for the
inner-face / outer-ring crops), the gallery's reference side and the fusion model, all loaded
once per actor."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from index import calibration
from index.gallery import Gallery, embeddings_of
from operators.forgery.detectors import load_detectors
from operators.forgery.face_regions import REGIONS_VERSION
from operators.forgery.fusion import FusionModel, load_fusion
from operators.forgery.identity_signal import SIGNALS, IdentityReferences, region_embeddings
from core.config import ForgeryConfig, ModelPackConfig, StorageConfig
from core.schema import ALIGNED_SIZE, CONTEXT_SIZE, STATUS_OK, WORK_SCHEMA, set_columns

AUTHENTIC, SUSPECTED, UNVERIFIED = "authentic", "suspected_forgery", "unverified"
ARTEFACT_REASON_AT = 0.5


def _crop(raw: bytes, size: int) -> np.ndarray:
    return np.frombuffer(raw, np.uint8).reshape(size, size, 3)


class ForgeryScorer:
    def __init__(self, gallery_uri: Optional[str] = None, forgery: ForgeryConfig | None = None,
                 model: ModelPackConfig | None = None, storage: StorageConfig | None = None,
                 gallery: Optional[Gallery] = None, pack=None, detectors: Optional[list] = None,
                 fusion: Optional[FusionModel] = None):
        self.config = forgery or ForgeryConfig()
        # No gallery: artefact signals only (jobs.evaluate without --gallery).
        self.gallery = gallery or (Gallery.load(gallery_uri, storage) if gallery_uri else None)
        self.detectors = detectors if detectors is not None else load_detectors(self.config.detectors)
        self.fusion = fusion or load_fusion(self.config.fusion_model, storage)
        self.references = None
        if self.config.use_identity_signal and self.gallery is not None:
            self.references = IdentityReferences(self.gallery)
            if pack is None:
                from operators.packs import load_model_pack
                pack = load_model_pack(model or ModelPackConfig(), storage, threads=1)
            expected = self.gallery.manifest.get("forgery_reference", {}).get("embedder_id")
            if expected != pack.embedder_id:
                raise ValueError(f"gallery {self.gallery.version} forgery references come from {expected}; "
                                 f"this scorer embeds with {pack.embedder_id}")
        self.pack = pack
        self.weak_floor = self._weak_match_floor()
        self.inner_floor = self._inner_match_floor() if self.references is not None else math.inf
        self._check_fusion_features()
        parts = [self.fusion.version] + [f"{d.name}={d.version}" for d in self.detectors]
        if self.references is not None:
            parts.append(f"identity={REGIONS_VERSION}/{self.pack.embedder_id}")
        self.model_version = ";".join(parts)

    def gallery_independent_parts(self) -> dict:
        """Constructor arguments that do not depend on the gallery: a gallery swap (Serve) builds
        the new scorer with these instead of loading the models again."""
        return {"pack": self.pack, "detectors": self.detectors, "fusion": self.fusion}

    def _weak_match_floor(self) -> float:
        """The impostor best-score quantile at weak_match_fpir (leave-one-identity-out over the
        references), never above the match threshold."""
        if self.gallery is None:
            return math.inf
        identities = np.asarray(self.gallery.references.column("identity_id").to_pylist())
        impostor = calibration.best_other_identity_scores(embeddings_of(self.gallery.references), identities)
        impostor = impostor[np.isfinite(impostor)]
        if not len(impostor):
            return self.gallery.match_threshold
        floor = float(np.quantile(impostor, 1.0 - self.config.weak_match_fpir))
        return min(floor, self.gallery.match_threshold)

    def _inner_match_floor(self) -> float:
        """Same rate for the inner face alone: each reference's best cosine to another identity's
        inner-face centroid. A swap of X shows X's inner face on a head that may not match X."""
        from index.forgery_reference import INNER_COLUMN

        inner = embeddings_of(self.gallery.references, INNER_COLUMN)
        owner = np.asarray(self.gallery.references.column("identity_id").to_pylist())
        order = np.asarray(list(self.references.row_of))
        impostor = calibration.best_other_identity_scores(inner, owner, targets=self.references.inner_centroid,
                                                          target_ids=order)
        impostor = impostor[np.isfinite(impostor)]
        return float(np.quantile(impostor, 1.0 - self.config.weak_match_fpir)) if len(impostor) else math.inf

    def available_features(self, vip: bool) -> set[str]:
        names = {f"artefact:{d.name}" for d in self.detectors}
        if vip and self.references is not None:
            names |= set(SIGNALS)
        return names

    def _check_fusion_features(self) -> None:
        if not isinstance(self.fusion, FusionModel):
            return
        # Without the identity signal no row takes the vip head, so only the generic one must fit.
        for vip in ((True, False) if self.references is not None else (False,)):
            head = self.fusion.head(vip)
            missing = set(head.features) - self.available_features(vip) if head else set()
            if missing:
                raise ValueError(f"fusion model {self.fusion.version} needs signals {sorted(missing)} that this "
                                 f"scorer does not compute (detectors: {[d.name for d in self.detectors]})")

    # ---- per batch ------------------------------------------------------------------------
    def signals(self, table: pa.Table) -> tuple[list[int], list[Optional[str]], list[dict], list[list[str]]]:
        """Positions of face rows, their VIP candidate (or None), signal dicts and reasons.
        The VIP candidate: the matched identity; else the top candidate above the weak floor;
        else the identity whose inner-face centroid the inner face resembles above its floor."""
        status = table.column("status").to_pylist()
        positions = [i for i, s in enumerate(status) if s == STATUS_OK]
        faces = table.take(pa.array(positions, pa.int64()))
        features: list[dict] = [{} for _ in positions]
        reasons: list[list[str]] = [[] for _ in positions]
        if not positions:
            return positions, [], features, reasons
        raw_contexts = faces.column("context_face").to_pylist()
        if any(raw is None for raw in raw_contexts):
            raise ValueError("face rows without context_face: the FaceAnalyzer was built with context_crops=False, "
                             "which only a crawl without the forgery stage may do")
        contexts = [_crop(c, CONTEXT_SIZE) for c in raw_contexts]
        for detector in self.detectors:
            for row, value in zip(features, detector.score(contexts)):
                row[f"artefact:{detector.name}"] = float(value)
        vip = [None] * len(positions)
        candidates = faces.column("candidates").to_pylist()
        identity = faces.column("identity_id").to_pylist()
        for k, found in enumerate(candidates):
            if identity[k] is not None:
                vip[k] = identity[k]
            elif found and found[0]["score"] is not None and found[0]["score"] >= self.weak_floor:
                vip[k] = found[0]["identity_id"]
                name = self.references.display_name.get(vip[k], vip[k]) if self.references else vip[k]
                reasons[k].append(f"weak match to {name} ({found[0]['score']:.2f}, below the match threshold "
                                  f"{self.gallery.match_threshold:.2f}): checked against {name}'s references")
        if self.references is not None:
            aligned = [_crop(raw, ALIGNED_SIZE) for raw in faces.column("aligned_face").to_pylist()]
            inner, outer = region_embeddings(self.pack, aligned)
            whole = embeddings_of(faces)
            inner_best = inner @ self.references.inner_centroid.T
            names = list(self.references.row_of)
            for k in range(len(positions)):
                best = int(np.argmax(inner_best[k]))
                if vip[k] is None and inner_best[k, best] >= self.inner_floor:
                    vip[k] = names[best]
                    name = self.references.display_name.get(vip[k], vip[k])
                    reasons[k].append(f"inner face resembles {name} ({inner_best[k, best]:.2f}) although the whole "
                                      f"face does not match: checked against {name}'s references")
                if vip[k] is None or vip[k] not in self.references.row_of:
                    continue
                reading = self.references.read(vip[k], whole[k], inner[k], outer[k])
                features[k].update(reading.values)
                reasons[k] += reading.reasons(self.references.display_name.get(vip[k], vip[k]))
        for k, row in enumerate(features):
            for name, value in row.items():
                if name.startswith("artefact:") and value >= ARTEFACT_REASON_AT:
                    reasons[k].append(f"{name.split(':', 1)[1]} artefact score {value:.2f}")
        vip = [v if v is not None and "identity_deficit" in features[k] else None for k, v in enumerate(vip)]
        return positions, vip, features, reasons

    def fuse(self, vip: list[Optional[str]], features: list[dict]) -> tuple[np.ndarray, list[str], list[float]]:
        scores = np.full(len(features), np.nan, np.float32)
        thresholds = [math.nan] * len(features)
        for is_vip in (True, False):
            ks = [k for k, v in enumerate(vip) if (v is not None) == is_vip]
            if not ks:
                continue
            rows = [features[k] for k in ks]
            if isinstance(self.fusion, FusionModel):
                head = self.fusion.head(is_vip)
                if head is None:
                    continue
                scores[ks], threshold = head.predict(rows), head.threshold
            else:
                scores[ks], threshold = self.fusion.predict(rows, is_vip), self.fusion.threshold
            for k in ks:
                thresholds[k] = threshold
        verdicts = [UNVERIFIED if v is None else (SUSPECTED if scores[k] >= thresholds[k] else AUTHENTIC)
                    for k, v in enumerate(vip)]
        return scores, verdicts, thresholds

    def __call__(self, batch: pa.Table | pd.DataFrame) -> pa.Table:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pandas(batch, schema=WORK_SCHEMA,
                                                                                preserve_index=False)
        table = table.select(WORK_SCHEMA.names).cast(WORK_SCHEMA)
        n = table.num_rows
        positions, vip, features, reasons = self.signals(table)
        scores, verdicts, thresholds = self.fuse(vip, features)
        out_score, out_verdict, out_reasons, out_signals = [None] * n, [None] * n, [None] * n, [None] * n
        out_vip = [None] * n
        kind = "calibrated P(forgery)" if self.fusion.calibrated else "uncalibrated forgery score"
        for k, position in enumerate(positions):
            why = list(reasons[k])
            if math.isnan(scores[k]):
                why.append("no VIP candidate and no artefact detector: nothing to score")
            else:
                out_score[position] = float(scores[k])
                if vip[k] is None:
                    why.append(f"no VIP involved: generic {kind} {scores[k]:.2f} only")
                else:
                    side = ">=" if verdicts[k] == SUSPECTED else "<"
                    why.append(f"{kind} {scores[k]:.2f} {side} threshold {thresholds[k]:.2f}")
            out_verdict[position] = verdicts[k]
            out_vip[position] = vip[k]
            out_reasons[position] = why
            out_signals[position] = [{"name": name, "value": float(value)} for name, value in features[k].items()]
        return set_columns(table, {
            "forgery_score": out_score, "verdict": out_verdict, "reasons": out_reasons,
            "forgery_signals": out_signals, "forgery_identity_id": out_vip,
            "forgery_model": [self.model_version if position is not None else None
                              for position in self._face_mask(table)],
        })

    @staticmethod
    def _face_mask(table: pa.Table) -> list[Optional[int]]:
        return [i if s == STATUS_OK else None for i, s in enumerate(table.column("status").to_pylist())]
