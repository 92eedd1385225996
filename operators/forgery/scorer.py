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
from index.cohort import Cohort
from index.gallery import Gallery, embeddings_of
from operators.forgery.detectors import load_detectors
from operators.forgery.face_regions import REGIONS_VERSION
from operators.forgery.fusion import FusionModel, load_fusion
from operators.forgery.identity_signal import SIGNALS, CandidateKind, IdentityReferences, region_embeddings
from operators.forgery.quality import gate_reason, inter_ocular_px, sharpness
from core.config import ForgeryConfig, ModelPackConfig, StorageConfig
from core.schema import ALIGNED_SIZE, CONTEXT_SIZE, STATUS_OK, WORK_SCHEMA, set_columns
from core.schema import VERDICT_AUTHENTIC as AUTHENTIC, VERDICT_SUSPECTED as SUSPECTED, VERDICT_UNVERIFIED as UNVERIFIED
from operators.packs import load_model_pack
from index.forgery_reference import INNER_COLUMN

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
        self.fusion = fusion or load_fusion(self.config.fusion_model, storage,
                                            pack_name=pack.name if pack is not None else (model or ModelPackConfig()).pack)
        self.references = None
        if self.config.use_identity_signal and self.gallery is not None:
            if pack is None:
                pack = load_model_pack(model or ModelPackConfig(), storage, threads=1)
            expected = self.gallery.manifest.get("forgery_reference", {}).get("embedder_id")
            if expected != pack.embedder_id:
                raise ValueError(f"gallery {self.gallery.version} forgery references come from {expected}; "
                                 f"this scorer embeds with {pack.embedder_id}")
            # Non-VIP faces of the identification cohort (index/cohort.py) join the impostor
            # cohort of the whole-face similarity when one exists for this embedder.
            cohort = Cohort.for_embedder(pack.embedder_id, storage_config=storage)
            if cohort is not None:
                cohort = cohort.without_people(self.gallery.identities.column("identity_id").to_pylist())
            self.cohort_version = cohort.version if cohort is not None else None
            self.references = IdentityReferences(self.gallery, top_k=self.config.reference_top_k,
                                                 non_vip_cohort=cohort.embeddings if cohort is not None else None)
        self.pack = pack
        self.weak_floor = self._weak_match_floor()
        self.inner_floor = self._inner_match_floor() if self.references is not None else math.inf
        self._check_fusion_features()
        parts = [self.fusion.version] + [f"{d.name}={d.version}" for d in self.detectors]
        if self.references is not None:
            parts.append(f"identity={REGIONS_VERSION}/{self.pack.embedder_id}/top{self.config.reference_top_k}"
                         + (f"/cohort={self.cohort_version}" if self.cohort_version else ""))
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
    def quality_gate(self, landmarks: list, aligned: list[np.ndarray]) -> tuple[list[dict], list[Optional[str]]]:
        """Per face: its quality measures (as signals) and why artefact detectors may not judge it."""
        measures, why_not = [], []
        for points, crop in zip(landmarks, aligned):
            iod, sharp = inter_ocular_px(points), sharpness(crop)
            measures.append({"quality:inter_ocular_px": iod, "quality:sharpness": sharp})
            why_not.append(gate_reason(iod, sharp, self.config.min_inter_ocular_px, self.config.min_sharpness))
        return measures, why_not

    def candidates(self, faces: pa.Table, whole: np.ndarray, inner: np.ndarray,
                   reasons: list[list[str]]) -> list[Optional[tuple[str, CandidateKind]]]:
        """The VIP each face is checked against and how it became that VIP's candidate: the
        matched identity; else, by whole face, the top gallery candidate above the weak floor and,
        by inner face, the identity whose inner-face centroid it resembles above the inner floor;
        when both exist and differ, the one it resembles more against that VIP's impostor cohort."""
        matched = faces.column("identity_id").to_pylist()
        found = faces.column("candidates").to_pylist()
        out: list[Optional[tuple[str, CandidateKind]]] = [None] * len(matched)
        refs = self.references
        inner_best = inner @ refs.inner_centroid.T if refs is not None and len(inner) else None
        names = list(refs.row_of) if refs is not None else []
        for k in range(len(matched)):
            if matched[k] is not None:
                out[k] = (matched[k], CandidateKind.MATCH)
                continue
            options = []
            if found[k] and found[k][0]["score"] is not None and found[k][0]["score"] >= self.weak_floor:
                options.append((found[k][0]["identity_id"], CandidateKind.WEAK, found[k][0]["score"]))
            if inner_best is not None:
                best = int(np.argmax(inner_best[k]))
                if inner_best[k, best] >= self.inner_floor:
                    options.append((names[best], CandidateKind.INNER, float(inner_best[k, best])))
            options = [o for o in options if refs is None or o[0] in refs.row_of] or options[:1]
            if len(options) == 2 and options[0][0] != options[1][0]:
                z = [refs.cohort_z("whole", options[0][0], whole[k]), refs.cohort_z("inner", options[1][0], inner[k])]
                options = [options[int(np.argmax(z))]]
            if not options:
                continue
            identity, kind, score = options[0]
            out[k] = (identity, kind)
            name = refs.display_name.get(identity, identity) if refs is not None else identity
            if kind is CandidateKind.WEAK:
                reasons[k].append(f"weak match to {name} ({score:.2f}, below the match threshold "
                                  f"{self.gallery.match_threshold:.2f}): checked against {name}'s references")
            else:
                reasons[k].append(f"inner face resembles {name} ({score:.2f}) although the whole face does not "
                                  f"match: checked against {name}'s references")
        return out

    def signals(self, table: pa.Table) -> tuple[list[int], list[Optional[str]], list[dict], list[list[str]]]:
        """Positions of face rows, their VIP candidate (or None), signal dicts and reasons."""
        status = table.column("status").to_pylist()
        positions = [i for i, s in enumerate(status) if s == STATUS_OK]
        faces = table.take(pa.array(positions, pa.int64()))
        features: list[dict] = [{} for _ in positions]
        reasons: list[list[str]] = [[] for _ in positions]
        if not positions:
            return positions, [], features, reasons
        raw_contexts = faces.column("context_face").to_pylist()
        if self.detectors and any(raw is None for raw in raw_contexts):
            raise ValueError("face rows without context_face: the FaceAnalyzer was built with context_crops=False, "
                             "which only a crawl without artefact detectors may do")
        aligned = [_crop(raw, ALIGNED_SIZE) for raw in faces.column("aligned_face").to_pylist()]
        measures, why_not = self.quality_gate(faces.column("landmarks").to_pylist(), aligned)
        judged = [k for k, why in enumerate(why_not) if why is None]
        for k, why in enumerate(why_not):
            features[k].update(measures[k])
            if why is not None and self.detectors:
                reasons[k].append(why)
        contexts = [_crop(raw_contexts[k], CONTEXT_SIZE) for k in judged] if self.detectors else []
        for detector in self.detectors:
            for k, value in zip(judged, detector.score(contexts) if contexts else []):
                features[k][f"artefact:{detector.name}"] = float(value)
        vip: list[Optional[str]] = [None] * len(positions)
        if self.gallery is not None:
            whole = embeddings_of(faces)
            inner, outer = region_embeddings(self.pack, aligned) if self.references is not None else (None, None)
            chosen = self.candidates(faces, whole, inner if inner is not None else np.zeros((0, 0)), reasons)
            for k, candidate in enumerate(chosen):
                if candidate is None or self.references is None or candidate[0] not in self.references.row_of:
                    continue
                identity, kind = candidate
                reading = self.references.read(identity, whole[k], inner[k], outer[k], kind)
                features[k].update(reading.values)
                reasons[k] += reading.reasons(self.references.display_name.get(identity, identity))
                vip[k] = identity
        for k, row in enumerate(features):
            for name, value in row.items():
                if name.startswith("artefact:") and value >= ARTEFACT_REASON_AT:
                    reasons[k].append(f"{name.split(':', 1)[1]} artefact score {value:.2f}")
        return positions, vip, features, reasons

    def fuse(self, vip: list[Optional[str]], features: list[dict]) -> tuple[np.ndarray, list[str], list[float]]:
        """Scores and verdicts. A VIP candidate's face is judged by the vip head. Any other face
        is scored by the generic head only when an artefact detector judged it (not gated), and
        gets a verdict only from a calibrated generic head (``generic_verdicts``): a deepfake of
        a stranger (e.g. a FaceSwap video of two non-VIPs) is still a deepfake; an uncalibrated
        ranking raises nothing."""
        scores = np.full(len(features), np.nan, np.float32)
        thresholds = [math.nan] * len(features)
        for is_vip in (True, False):
            ks = [k for k, v in enumerate(vip) if (v is not None) == is_vip
                  and (is_vip or any(name.startswith("artefact:") for name in features[k]))]
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
        generic = self.config.generic_verdicts and self.fusion.calibrated
        verdicts = [UNVERIFIED if math.isnan(scores[k]) or (v is None and not generic) else
                    (SUSPECTED if scores[k] >= thresholds[k] else AUTHENTIC) for k, v in enumerate(vip)]
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
                why.append("no VIP candidate and no artefact signal: nothing to score")
            else:
                out_score[position] = float(scores[k])
                if vip[k] is None and verdicts[k] == UNVERIFIED:
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
