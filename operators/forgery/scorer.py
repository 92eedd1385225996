"""ForgeryScorer: fills forgery_score / verdict / reasons / forgery_signals / forgery_model on
WORK_SCHEMA face rows, after GalleryMatcher. Holds the artefact detectors, the embedder (for the
inner-face / outer-ring crops), the gallery's reference side (operators/forgery/pack_identity.py;
opt-in, a second pack's as well) and the fusion model, all loaded once per actor."""
from __future__ import annotations

import math
import re
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from index.gallery import Gallery, embeddings_of
from operators.forgery.base import ARTEFACT_PREFIX, is_generic
from operators.forgery.detectors import load_detectors
from operators.forgery.fusion import SHIPPED, FusionModel, fitted_detectors, load_fusion
from operators.forgery.identity_signal import SIGNALS, CandidateKind, region_embeddings
from operators.forgery.pack_identity import SECOND_PACK_PREFIX, PackIdentity
from operators.forgery.quality import GATED_ARTEFACTS, GATED_CONSISTENCY, GATED_WITH_CONSISTENCY, gate_reason, \
    inter_ocular_px, sharpness
from operators.forgery.region_consistency import SIGNAL as CONSISTENCY_SIGNAL, RegionConsistency, pinned_versions, \
    shipped_for
from core.config import DEFAULT_WEAK_MATCH_FPIR, ForgeryConfig, ModelPackConfig, StorageConfig
from core.schema import ALIGNED_SIZE, CONTEXT_SIZE, STATUS_OK, WORK_SCHEMA, set_columns
from core.schema import VERDICT_AUTHENTIC as AUTHENTIC, VERDICT_SUSPECTED as SUSPECTED, VERDICT_UNVERIFIED as UNVERIFIED
from operators.packs import load_model_pack

ARTEFACT_REASON_AT = 0.5
# Region inconsistency (spreads below authentic faces) from which a face's reasons mention it.
CONSISTENCY_REASON_AT = 3.0
# The part of forgery_model naming region consistency's own size gate (ForgeryConfig.consistency_gate
# "identity"); a fusion fitted so brings it. Without it, the artefact detectors' gate.
CONSISTENCY_GATE = "consistency-gate=identity@{px:g}px"
CONSISTENCY_GATE_FOUND = re.compile(r"(?:^|;)consistency-gate=identity@([0-9.]+)px(?:;|$)")


def fuse_signals(fusion, vip: list[Optional[str]], features: list[dict],
                 generic_verdicts: bool) -> tuple[np.ndarray, list[str], list[float]]:
    """Scores and verdicts. A VIP candidate's face is judged by the vip head. Any other face
    is scored by the generic head only when a generic signal (an artefact detector's, region
    consistency) judged it (not gated), and gets a verdict only from a calibrated generic head
    (``generic_verdicts``): a deepfake of a stranger (e.g. a FaceSwap video of two non-VIPs) is
    still a deepfake; an uncalibrated ranking raises nothing. Outside the scorer so that an
    evaluation can re-fuse recorded signals with another fusion under the same rules."""
    scores = np.full(len(features), np.nan, np.float32)
    thresholds = [math.nan] * len(features)
    for is_vip in (True, False):
        ks = [k for k, v in enumerate(vip) if (v is not None) == is_vip
              and (is_vip or any(is_generic(name) for name in features[k]))]
        if not ks:
            continue
        rows = [features[k] for k in ks]
        if isinstance(fusion, FusionModel):
            head = fusion.head(is_vip)
            if head is None:
                continue
            scores[ks], threshold = head.predict(rows), head.threshold
        else:
            scores[ks], threshold = fusion.predict(rows, is_vip), fusion.threshold
        for k in ks:
            thresholds[k] = threshold
    generic = generic_verdicts and fusion.calibrated
    verdicts = [UNVERIFIED if math.isnan(scores[k]) or (v is None and not generic) else
                (SUSPECTED if scores[k] >= thresholds[k] else AUTHENTIC) for k, v in enumerate(vip)]
    return scores, verdicts, thresholds


def _crop(raw: bytes, size: int) -> np.ndarray:
    return np.frombuffer(raw, np.uint8).reshape(size, size, 3)


class ForgeryScorer:
    def __init__(self, gallery_uri: Optional[str] = None, forgery: ForgeryConfig | None = None,
                 model: ModelPackConfig | None = None, storage: StorageConfig | None = None,
                 gallery: Optional[Gallery] = None, pack=None, detectors: Optional[list] = None,
                 fusion: Optional[FusionModel] = None, second_pack=None):
        self.config = forgery or ForgeryConfig()
        # No gallery: artefact signals only (jobs.evaluate without --gallery).
        self.gallery = gallery or (Gallery.load(gallery_uri, storage) if gallery_uri else None)
        second_embedder_id = None
        if self.config.second_pack is not None and fusion is None and self.config.fusion_model == SHIPPED:
            # The shipped fusion is chosen by the second pack's embedder too: load the pack now, once.
            second_pack = second_pack or load_model_pack(self.config.second_pack, storage, threads=1)
            second_embedder_id = second_pack.embedder_id
        self.fusion = fusion or load_fusion(
            self.config.fusion_model, storage,
            pack_name=pack.name if pack is not None else (model or ModelPackConfig()).pack,
            second_embedder_id=second_embedder_id)
        if detectors is None:
            specs = self.config.detectors if self.config.detectors is not None else fitted_detectors(self.fusion)
            detectors = load_detectors(specs)
        self.detectors = detectors
        self.identity: Optional[PackIdentity] = None
        self.second: Optional[PackIdentity] = None
        if self.config.weak_match_fpir is None:
            self.config = self.config.model_copy(update={"weak_match_fpir": self._fitted_weak_rate()})
        if self.config.consistency_gate is None:
            self.config = self.config.model_copy(update=self._fitted_consistency_gate())
        if self.config.use_identity_signal and self.gallery is not None:
            if pack is None:
                pack = load_model_pack(model or ModelPackConfig(), storage, threads=1)
            self.identity = PackIdentity(self.gallery, pack, self.config, storage)
            if self.config.second_pack is not None:
                self.second = self._second_identity(second_pack, storage)
        self.references = self.identity.references if self.identity is not None else None
        self.cohort_version = self.identity.cohort_version if self.identity is not None else None
        self.pack = pack
        self._pin_consistency(storage)
        self._check_fusion_features()
        # A reason names a signal only when the fusion weighs it.
        self._fused = {f for vip in (True, False) for head in [self.fusion.head(vip)] if head is not None
                       for f in head.features} if isinstance(self.fusion, FusionModel) else set()
        parts = [self.fusion.version] + [f"{d.name}={d.version}" for d in self.detectors]
        if self.identity is not None:
            parts.append(f"identity={self.identity.version}")
        if self.second is not None:
            parts.append(f"pack2={self.second.version}/gallery={self.second.gallery.version}")
        for side, prefix in self._sides():
            if side.consistency is not None:
                parts.append(f"{prefix}consistency={side.consistency.version}")
        if self.config.consistency_gate == "identity" and any(side.consistency is not None for side, _ in self._sides()):
            parts.append(CONSISTENCY_GATE.format(px=self.config.consistency_min_inter_ocular_px))
        self.model_version = ";".join(parts)

    def _second_identity(self, second_pack, storage: StorageConfig | None) -> PackIdentity:
        if self.config.second_gallery is None:
            raise ValueError("ForgeryConfig.second_pack needs second_gallery: a gallery enrolled with that pack")
        second_gallery = Gallery.load(self.config.second_gallery, storage)
        missing = set(self.gallery.identities.column("identity_id").to_pylist()) - \
            set(second_gallery.identities.column("identity_id").to_pylist())
        if missing:
            raise ValueError(f"second gallery {second_gallery.version} lacks {len(missing)} of gallery "
                             f"{self.gallery.version}'s identities (e.g. {sorted(missing)[:3]}): enrol the same "
                             f"root with the second pack")
        if second_pack is None:
            second_pack = load_model_pack(self.config.second_pack, storage, threads=1)
        # An artefact URI names heads for the scorer's own pack; the second pack takes its shipped ones.
        config = self.config if self.config.region_consistency in (None, "off", "shipped") else \
            self.config.model_copy(update={"region_consistency": "shipped"})
        return PackIdentity(second_gallery, second_pack, config, storage)

    def _fitted_weak_rate(self) -> float:
        """The weak-candidate rate the fusion was fitted at; the default for fusions without one."""
        signals_model = getattr(self.fusion, "metadata", {}).get("scorer", {}).get("signals_model", "")
        found = re.search(r"/weak([0-9.eE+-]+)/", signals_model + "/")
        return float(found.group(1)) if found else DEFAULT_WEAK_MATCH_FPIR

    def _fitted_consistency_gate(self) -> dict:
        """The gate the fusion's region-consistency signals were read through: its own size floor
        when the signals_model names one, else the artefact detectors' gate (every earlier fusion)."""
        signals_model = getattr(self.fusion, "metadata", {}).get("scorer", {}).get("signals_model", "")
        found = CONSISTENCY_GATE_FOUND.search(signals_model)
        if found is None:
            return {"consistency_gate": "artefact"}
        return {"consistency_gate": "identity", "consistency_min_inter_ocular_px": float(found.group(1))}

    def _pin_consistency(self, storage: StorageConfig | None) -> None:
        """A fusion that weighs region consistency was fitted on one version of the heads; another
        version's spreads would be read on its scale. With "shipped" heads the fusion's own version
        is taken from the package; heads named by URI must be that version."""
        if not isinstance(self.fusion, FusionModel):
            return
        pinned = pinned_versions(self.fusion.metadata.get("scorer", {}).get("signals_model", ""))
        for side, prefix in self._sides():
            wanted = pinned.get(prefix)
            weighed = any(prefix + CONSISTENCY_SIGNAL in head.features for head in self.fusion.heads.values())
            if not weighed or wanted is None or side.consistency is None or side.consistency.version == wanted:
                continue
            uri = shipped_for(side.pack.embedder_id, wanted) if self.config.region_consistency == "shipped" or \
                prefix == SECOND_PACK_PREFIX else None
            if uri is None:
                raise ValueError(f"fusion model {self.fusion.version} was fitted on region-consistency heads "
                                 f"{wanted}; this scorer has {side.consistency.version}")
            side.consistency = RegionConsistency.load(uri, storage)

    def _sides(self) -> list[tuple[PackIdentity, str]]:
        """Each pack's identity side with its signal prefix."""
        return [(side, prefix) for side, prefix in ((self.identity, ""), (self.second, SECOND_PACK_PREFIX))
                if side is not None]

    def gallery_independent_parts(self) -> dict:
        """Constructor arguments that do not depend on the gallery: a gallery swap (Serve) builds
        the new scorer with these instead of loading the models again."""
        return {"pack": self.pack, "detectors": self.detectors, "fusion": self.fusion,
                "second_pack": self.second.pack if self.second is not None else None}

    def available_features(self, vip: bool) -> set[str]:
        names = {f"{ARTEFACT_PREFIX}{d.name}" for d in self.detectors}
        names |= {prefix + CONSISTENCY_SIGNAL for side, prefix in self._sides() if side.consistency is not None}
        if vip and self.identity is not None:
            names |= set(SIGNALS)
        if vip and self.second is not None:
            names |= {SECOND_PACK_PREFIX + name for name in SIGNALS}
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
    def quality_gate(self, landmarks: list, aligned: list[np.ndarray]) -> tuple[list[dict], list[Optional[str]],
                                                                                list[Optional[str]]]:
        """Per face: its quality measures (as signals), why artefact detectors (and region
        consistency, under the "artefact" gate) may not judge it, and, under the "identity" gate,
        why region consistency may not (None where it may)."""
        own_gate = self.config.consistency_gate == "identity"
        gated = GATED_ARTEFACTS if own_gate else GATED_WITH_CONSISTENCY
        measures, why_not, why_not_consistency = [], [], []
        for points, crop in zip(landmarks, aligned):
            iod, sharp = inter_ocular_px(points), sharpness(crop)
            measures.append({"quality:inter_ocular_px": iod, "quality:sharpness": sharp})
            why_not.append(gate_reason(iod, sharp, self.config.min_inter_ocular_px, self.config.min_sharpness, gated))
            why_not_consistency.append(
                gate_reason(iod, sharp, self.config.consistency_min_inter_ocular_px, 0.0, GATED_CONSISTENCY)
                if own_gate else why_not[-1])
        return measures, why_not, why_not_consistency

    def candidates(self, side: PackIdentity, matched: list[Optional[str]], tops: list[Optional[tuple[str, float]]],
                   whole: np.ndarray, inner: np.ndarray, reasons: list[list[str]],
                   label: str = "") -> list[Optional[tuple[str, CandidateKind]]]:
        """The VIP each face is checked against by one pack and how it became that VIP's
        candidate: the matched identity; else, by whole face, the top gallery candidate above the
        weak floor and, by inner face, the identity whose inner-face centroid it resembles above
        the inner floor; when both exist and differ, the one it resembles more against that VIP's
        impostor cohort."""
        out: list[Optional[tuple[str, CandidateKind]]] = [None] * len(matched)
        for k in range(len(matched)):
            if matched[k] is not None:
                out[k] = (matched[k], CandidateKind.MATCH)
                continue
            choice = side.pick(side.options(tops[k], inner[k]), whole[k], inner[k])
            if choice is None:
                continue
            identity, kind, score = choice
            out[k] = (identity, kind)
            reasons[k].append(label + side.reason(identity, kind, score))
        return out

    def _identity_sides(self, faces: pa.Table, aligned: list[np.ndarray]) -> list[tuple]:
        """Per pack: (side, signal prefix, reason label, matched ids, whole-face tops, whole, inner,
        outer embeddings). The first pack's match comes from the gallery matcher; the second
        pack's from its own gallery's centroids."""
        whole = embeddings_of(faces)
        inner, outer = region_embeddings(self.pack, aligned)
        found = faces.column("candidates").to_pylist()
        tops = [(f[0]["identity_id"], f[0]["score"]) if f else None for f in found]
        sides = [(self.identity, "", "", faces.column("identity_id").to_pylist(), tops, whole, inner, outer)]
        if self.second is not None:
            whole2, inner2, outer2 = self.second.embed(aligned)
            best, score = self.second.best_match(whole2)
            tops2 = [(self.second.identity_ids[b], float(v)) for b, v in zip(best, score)]
            matched2 = [t[0] if t[1] >= self.second.gallery.match_threshold else None for t in tops2]
            label = f"second pack ({self.second.pack.embedder_id}): "
            sides.append((self.second, SECOND_PACK_PREFIX, label, matched2, tops2, whole2, inner2, outer2))
        return sides

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
        measures, why_not, why_not_consistency = self.quality_gate(faces.column("landmarks").to_pylist(), aligned)
        judged = [k for k, why in enumerate(why_not) if why is None]
        consistency_rows = [k for k, why in enumerate(why_not_consistency) if why is None]
        # A gate's reason is only given when a signal it withholds counts: a detector, or region
        # consistency that the fusion weighs.
        weighs_consistency = any(prefix + CONSISTENCY_SIGNAL in self._fused
                                 for side, prefix in self._sides() if side.consistency is not None)
        own_gate = self.config.consistency_gate == "identity"
        for k, why in enumerate(why_not):
            features[k].update(measures[k])
            if why is not None and (self.detectors or (weighs_consistency and not own_gate)):
                reasons[k].append(why)
            if own_gate and why_not_consistency[k] is not None and weighs_consistency:
                reasons[k].append(why_not_consistency[k])
        contexts = [_crop(raw_contexts[k], CONTEXT_SIZE) for k in judged] if self.detectors else []
        for detector in self.detectors:
            for k, value in zip(judged, detector.score(contexts) if contexts else []):
                features[k][f"artefact:{detector.name}"] = float(value)
        vip: list[Optional[str]] = [None] * len(positions)
        if self.identity is not None:
            for side, prefix, label, matched, tops, whole, inner, outer in self._identity_sides(faces, aligned):
                if side.consistency is not None and consistency_rows:
                    values = side.consistency.inconsistency(inner[consistency_rows], outer[consistency_rows])
                    for k, value in zip(consistency_rows, values):
                        features[k][prefix + CONSISTENCY_SIGNAL] = float(value)
                        if value >= CONSISTENCY_REASON_AT and prefix + CONSISTENCY_SIGNAL in self._fused:
                            reasons[k].append(label + side.consistency.reason(float(value)))
                chosen = self.candidates(side, matched, tops, whole, inner, reasons, label)
                for k, candidate in enumerate(chosen):
                    if candidate is None or candidate[0] not in side.references.row_of:
                        continue
                    identity, kind = candidate
                    reading = side.references.read(identity, whole[k], inner[k], outer[k], kind)
                    features[k].update({prefix + name: value for name, value in reading.values.items()})
                    reasons[k] += [label + why for why in reading.reasons(side.display(identity))]
                    # The first pack's VIP when it has one: the face's forgery_identity_id.
                    vip[k] = vip[k] or identity
        for k, row in enumerate(features):
            for name, value in row.items():
                if name.startswith(ARTEFACT_PREFIX) and value >= ARTEFACT_REASON_AT:
                    reasons[k].append(f"{name.split(':', 1)[1]} artefact score {value:.2f}")
        return positions, vip, features, reasons

    def fuse(self, vip: list[Optional[str]], features: list[dict]) -> tuple[np.ndarray, list[str], list[float]]:
        return fuse_signals(self.fusion, vip, features, self.config.generic_verdicts)

    def _unscored_reason(self, vip: Optional[str], features: dict) -> str:
        # A vip-head-only fusion (both shipped defaults) leaves a stranger's face unscored even
        # though its artefact signals were computed; saying "no generic signal" then would be false.
        if (vip is None and any(is_generic(name) for name in features) and isinstance(self.fusion, FusionModel)
                and self.fusion.head(False) is None):
            return (f"no VIP candidate, and fusion model {self.fusion.version} judges VIP candidates only: "
                    "its generic signals are recorded in forgery_signals, not scored")
        if vip is None:
            return "no VIP candidate and no generic signal: nothing to score"
        return f"VIP candidate {vip}, but no signal the fusion model {self.fusion.version} can score"

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
                why.append(self._unscored_reason(vip[k], features[k]))
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
