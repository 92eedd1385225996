"""The forgery benchmark: manipulation families made from ../shared (forgery_families), scored by
the crawl's operators, measured three ways, per family, with group-bootstrap intervals.

- ``configured``: the scorer's own forgery_score / verdict (the fusion it was configured with),
  on the side(s) that fusion was not fitted on: what a crawl with this configuration reports.
- ``leave_one_family_out``: for each family F and each side S, a fusion fitted on the other
  side's authentic faces and forgeries of every family but F, applied to side S's F forgeries
  and authentic faces (pooled over both sides): how the recipe does on a manipulation and on
  identities it never saw.
- ``fitted`` (with a fusion fitted here, e.g. --write-fusion): fitted on the calibration side,
  all families; measured on the other side.

Every fusion is applied through the scorer's own rules (fusion_fit.apply: scorer.fuse_signals), so verdicts follow
its rules. A face the scorer leaves 'unverified' can raise no alarm, so AUC and TPR at 1% FPR
rank by ``alarm`` = the fused score on judged faces and -1 on unverified ones; ECE is of the
fused probability on every scored face, at the stated prior and restated at even odds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import MIN_IDENTIFY_EYE_PX, SHARED_DIR, ForgeryConfig
from core.schema import VERDICT_AUTHENTIC, VERDICT_SUSPECTED, VERDICT_UNVERIFIED
from operators.forgery.fusion import embedder_of, pack_family, pointer_name
from vipwatch.evaluation import fusion_fit, unseen_authentic
from vipwatch.evaluation.forgery_corpus import SIDES
from vipwatch.evaluation.group_bootstrap import bootstrap
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from vipwatch.evaluation.forgery_corpus import build_corpus
from vipwatch.evaluation.forgery_scoring import ensure_gallery, score_corpus
from vipwatch.evaluation.video_verdicts import video_verdicts

log = logging.getLogger(__name__)
SIZE_BINS = (0, 10, 20, 40, 80, math.inf)
# AUC is also reported within the bands the scorer's default gates draw: below the identification
# floor a face has no identity match (only its candidate's signals), from the artefact gate every
# signal is read. A pooled AUC hides which faces the verdict can be trusted on.
AUC_SIZE_BANDS = (0.0, MIN_IDENTIFY_EYE_PX, ForgeryConfig.model_fields["min_inter_ocular_px"].default, math.inf)
NO_ALARM = -1.0
DATA_TERMS = {
    "faces_aligned": "Glint360K crops via ElisonSherton/Face-Applications: non-commercial research only",
    "lfw": "Labeled Faces in the Wild (UMass Amherst): research benchmark, photos copyright their owners; research use",
    "photos": "ageitgey/face_recognition (MIT), timesler/facenet-pytorch (MIT), Linzaer Ultra-Light (MIT), "
              "hpc203/scrfd-opencv (no licence stated)",
    "ffpp": "FaceForensics++ original video 634 (c23): research, non-commercial",
}


def other_side(side: str) -> str:
    return SIDES[1 - SIDES.index(side)]


def lofo_split(frame: pd.DataFrame, family: str, eval_side: str) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, evaluation rows) as boolean masks: fit on the other side without ``family``,
    evaluate on ``eval_side``'s ``family`` forgeries and authentic faces."""
    side = frame["side"].to_numpy()
    fam = frame["family"].to_numpy()
    authentic = frame["label"].to_numpy() == 0
    fit = (side != eval_side) & (authentic | (fam != family))
    evaluate = (side == eval_side) & (authentic | (fam == family))
    return fit, evaluate


def family_table(frame: pd.DataFrame, scores: np.ndarray, flagged: np.ndarray, judged: np.ndarray,
                 prior: float | None, resamples: int) -> dict:
    """Per family: metrics with intervals over that family's forgeries vs all authentic rows."""
    out = {}
    authentic = frame["label"].to_numpy() == 0
    alarm = np.where(judged & np.isfinite(scores), scores, NO_ALARM)
    for family in sorted(set(frame.loc[~authentic, "family"])):
        rows = authentic | (frame["family"].to_numpy() == family)
        sub = frame[rows]
        result = bootstrap(sub["label"].to_numpy(), alarm[rows], scores[rows], sub["group"].to_numpy(), prior,
                           resamples)
        forged = sub["label"].to_numpy() == 1
        result["detection_rate_at_threshold"] = float(flagged[rows][forged].mean())
        result["vip_candidate_share"] = float(sub["vip"].to_numpy(bool)[forged].mean())
        result["judged_share"] = float(judged[rows][forged].mean())
        result["auc_ceiling"] = auc_ceiling(sub["label"].to_numpy(), alarm[rows], judged[rows])
        result["auc_by_size"] = auc_by_size(sub, alarm[rows], scores[rows], prior, resamples)
        out[family] = result
    out["authentic_false_alarm_rate"] = float(flagged[authentic].mean()) if authentic.any() else float("nan")
    out["authentic_flagged"] = int(flagged[authentic].sum())
    out["authentic_faces"] = int(authentic.sum())
    return out


def auc_by_size(frame: pd.DataFrame, alarm: np.ndarray, scores: np.ndarray, prior: float | None,
                resamples: int) -> list[dict]:
    """AUC [95% CI] of one family's forgeries vs the authentic faces, both within each
    AUC_SIZE_BANDS band of inter-ocular distance and from the identification floor up (a band
    missing either class has no AUC)."""
    labels = frame["label"].to_numpy()
    iod = frame["inter_ocular_px"].to_numpy()
    groups = frame["group"].to_numpy()
    out = []
    # Plus every face the matcher identifies at all (its floor and up), the faces a verdict is for.
    for low, high in list(zip(AUC_SIZE_BANDS[:-1], AUC_SIZE_BANDS[1:])) + [(MIN_IDENTIFY_EYE_PX, math.inf)]:
        inside = (iod >= low) & (iod < high)
        band = {"inter_ocular_px": f"{low:g}-{high:g}" if math.isfinite(high) else f"{low:g}+",
                "forged": int((labels[inside] == 1).sum()), "authentic": int((labels[inside] == 0).sum()),
                "auc": {"value": float("nan"), "low": float("nan"), "high": float("nan")}}
        if band["forged"] and band["authentic"]:
            result = bootstrap(labels[inside], alarm[inside], scores[inside], groups[inside], prior, resamples)
            band["auc"] = result["auc"]
        out.append(band)
    return out


def auc_ceiling(labels: np.ndarray, alarm: np.ndarray, judged: np.ndarray) -> float:
    """The AUC if every judged forgery outranked every authentic face, the rest scored as they are:
    a forgery no head judges ties with the unjudged authentic faces at NO_ALARM, so better signals
    for the judged faces cannot lift the AUC past this; only judging more forgeries can."""
    from sklearn.metrics import roc_auc_score

    forged = labels == 1
    if not forged.any() or forged.all():
        return float("nan")
    best = np.where(forged & judged, np.nanmax(np.r_[alarm, 1.0]) + 1.0, alarm)
    return float(roc_auc_score(labels, best))


def size_bins(frame: pd.DataFrame, flagged: np.ndarray) -> list[dict]:
    authentic = frame["label"].to_numpy() == 0
    iod = frame["inter_ocular_px"].to_numpy()
    out = []
    for low, high in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        inside = authentic & (iod >= low) & (iod < high)
        out.append({"inter_ocular_px": f"{low}-{high if math.isfinite(high) else ''}",
                    "authentic_faces": int(inside.sum()), "vip_candidates": int(frame["vip"].to_numpy(bool)[inside].sum()),
                    "flagged": int(flagged[inside].sum()),
                    "false_alarm_rate": float(flagged[inside].mean()) if inside.any() else float("nan")})
    return out


def configured(frame: pd.DataFrame, fusion, scorer, eval_sides: list[str], resamples: int) -> dict:
    rows = frame["side"].isin(eval_sides).to_numpy()
    sub = frame[rows].reset_index(drop=True)
    scores, flagged, judged = fusion_fit.apply(fusion, sub, scorer.config)
    prior = getattr(fusion, "metadata", {}).get("prior")
    return {"eval_sides": eval_sides, "fusion": fusion.version,
            "families": family_table(sub, scores, flagged, judged, prior, resamples),
            "size_bins": size_bins(sub, flagged)}


def lofo_scores(frame: pd.DataFrame, family: str, config, prior: float, target_fpr: float,
                heads: tuple[str, ...] = fusion_fit.HEADS) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, dict]:
    """One family's leave-one-family-out refits, both sides: (evaluated rows, score, flagged,
    judged, rows each fit saw)."""
    parts, scores, flags, judged, fits = [], [], [], [], {}
    for side in SIDES:
        fit_rows, eval_rows = lofo_split(frame, family, side)
        if not (frame.loc[eval_rows, "label"] == 1).any():
            continue
        fusion = fusion_fit.fit_fusion(frame[fit_rows], prior, target_fpr, heads_to_fit=heads)
        sub = frame[eval_rows]
        s, flagged, judged_rows = fusion_fit.apply(fusion, sub, config)
        parts.append(sub)
        scores.append(s)
        flags.append(flagged)
        judged.append(judged_rows)
        fits[f"{family}/eval={side}"] = {k: v.get("rows") for k, v in fusion.metadata["fits"].items()}
    return (pd.concat(parts, ignore_index=True), np.concatenate(scores), np.concatenate(flags),
            np.concatenate(judged), fits)


def leave_one_family_out(frame: pd.DataFrame, config, prior: float, target_fpr: float, resamples: int,
                         heads: tuple[str, ...] = fusion_fit.HEADS, families: list[str] | None = None) -> dict:
    families = families or sorted(set(frame.loc[frame["label"] == 1, "family"]))
    out = {"families": {}, "fits": {}}
    pooled_flags = {}
    for family in families:
        sub, scores, flags, judged, fits = lofo_scores(frame, family, config, prior, target_fpr, heads)
        out["fits"].update(fits)
        table = family_table(sub, scores, flags, judged, prior, resamples)
        out["families"][family] = table[family]
        pooled_flags[family] = {"authentic_false_alarm_rate": table["authentic_false_alarm_rate"],
                                "authentic_flagged": table["authentic_flagged"],
                                "authentic_faces": table["authentic_faces"]}
    out["authentic_false_alarms"] = pooled_flags
    return out


def fitted_on_side(frame: pd.DataFrame, scorer, calibration_side: str, prior: float, target_fpr: float,
                   resamples: int, metadata: dict, heads: tuple[str, ...] = fusion_fit.HEADS) -> tuple[object, dict]:
    fit_rows = (frame["side"] == calibration_side).to_numpy()
    fusion = fusion_fit.fit_fusion(frame[fit_rows], prior, target_fpr,
                                   {**metadata, "calibration_side": calibration_side}, heads_to_fit=heads)
    sub = frame[~fit_rows].reset_index(drop=True)
    scores, flagged, judged = fusion_fit.apply(fusion, sub, scorer.config)
    return fusion, {"eval_sides": [other_side(calibration_side)], "version": fusion.version,
                    "families": family_table(sub, scores, flagged, judged, prior, resamples),
                    "size_bins": size_bins(sub, flagged)}


# ---- output --------------------------------------------------------------------------------
def _ci(cell: dict) -> str:
    if cell["value"] is None or not np.isfinite(cell["value"]):
        return "-"
    return f"{cell['value']:.3f} [{cell['low']:.2f}, {cell['high']:.2f}]"


def markdown(section: dict, title: str) -> str:
    lines = [f"**{title}** (evaluated on side {'+'.join(section.get('eval_sides', SIDES))})", "",
             "| family | forged (ids) | authentic (groups) | AUC [95% CI] | TPR@1%FPR [95% CI] | ECE at prior [95% CI] | "
             "ECE at even odds [95% CI] | detected at threshold | VIP candidate | judged | AUC ceiling |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for family, r in section["families"].items():
        if not isinstance(r, dict) or "auc" not in r:
            continue
        c = r["counts"]
        lines.append(f"| {family} | {c['forged']} ({c['forged_groups']}) | {c['authentic']} ({c['authentic_groups']}) "
                     f"| {_ci(r['auc'])} | {_ci(r['tpr_at_fpr_1pct'])} | {_ci(r['ece'])} | {_ci(r['ece_even'])} "
                     f"| {r['detection_rate_at_threshold']:.3f} | {r['vip_candidate_share']:.2f} | {r['judged_share']:.2f} "
                     f"| {r.get('auc_ceiling', float('nan')):.3f} |")
    bands = [(family, r["auc_by_size"]) for family, r in section["families"].items()
             if isinstance(r, dict) and r.get("auc_by_size")]
    if bands:
        lines += ["", "AUC [95% CI] within bands of inter-ocular distance, forged v authentic faces of the band:", "",
                  "| family | " + " | ".join(f"{b['inter_ocular_px']} px" for b in bands[0][1]) + " |",
                  "|---|" + "---|" * len(bands[0][1])]
        for family, cells in bands:
            lines.append(f"| {family} | " + " | ".join(f"{_ci(b['auc'])} ({b['forged']} v {b['authentic']})"
                                                      for b in cells) + " |")
    families = section["families"]
    if "authentic_faces" in families:
        lines += ["", f"authentic false alarms at the threshold: {families['authentic_flagged']} / "
                      f"{families['authentic_faces']} = {families['authentic_false_alarm_rate']:.4f}"]
    if "authentic_false_alarms" in section:
        lines += ["", "authentic false alarms at each fit's threshold: " + ", ".join(
            f"{f}: {v['authentic_flagged']}/{v['authentic_faces']}" for f, v in section["authentic_false_alarms"].items())]
    if "size_bins" in section:
        lines += ["", "| inter-ocular px | authentic faces | VIP candidates | flagged | false-alarm rate |",
                  "|---|---|---|---|---|"]
        for b in section["size_bins"]:
            rate = "-" if not np.isfinite(b["false_alarm_rate"]) else f"{b['false_alarm_rate']:.4f}"
            lines.append(f"| {b['inter_ocular_px']} | {b['authentic_faces']} | {b['vip_candidates']} | {b['flagged']} "
                         f"| {rate} |")
    return "\n".join(lines)


def source_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def data_description(corpus_dir: Path, frame: pd.DataFrame) -> dict:
    params = json.loads((corpus_dir / "params.json").read_text())
    counts = frame.groupby(["side", "family"]).size()
    corpus = {k: v for k, v in params.items() if k != "sides"}
    corpus["video_side"] = params["sides"].get("video:ffpp_634")
    return {"corpus": corpus, "shared_dir": str(SHARED_DIR),
            "faces_by_side_family": {f"{s}/{f}": int(n) for (s, f), n in counts.items()},
            "terms": DATA_TERMS}


def write_fusion_artefact(fusion, root: Path, evaluation: dict, data: dict, command: str,
                          unseen: dict | None = None) -> Path:
    """<root>/<version>/fusion.json + manifest.json (data, recipe, metrics, terms, sha256), and
    <root>/DEFAULT (DEFAULT.dlib for a dlib pack; DEFAULT.dlib+<embedder_id> with a second pack)
    naming it (for the package's artefacts/ directory: what "shipped" loads for that pack family)."""
    target = Path(root) / fusion.version.replace("@", "-")
    target.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(fusion.to_json(), indent=2).encode()
    (target / "fusion.json").write_bytes(raw)
    manifest = {"format": "vipwatch-forgery-fusion-artefact", "version": fusion.version,
                "fusion_sha256": hashlib.sha256(raw).hexdigest(), "prior": fusion.metadata["prior"],
                "target_fpr": fusion.metadata["target_fpr"], "recipe": fusion.metadata["recipe"],
                "calibration_side": fusion.metadata.get("calibration_side"), "command": command,
                "signals": {k: h.columns for k, h in fusion.heads.items()},
                "scorer": fusion.metadata.get("scorer", {}), "data": data,
                "metrics_on_other_side": {f: {m: r[m] for m in ("auc", "tpr_at_fpr_1pct", "ece", "ece_even", "counts")}
                                          for f, r in evaluation["families"].items() if isinstance(r, dict) and "auc" in r},
                "authentic_false_alarm_rate_other_side": evaluation["families"]["authentic_false_alarm_rate"],
                "size_bins_other_side": evaluation["size_bins"]}
    if unseen is not None:
        mine = [r for r in unseen["fusions"] if fusion.version in r["fusion"]]
        manifest["authentic_false_alarms_unseen_by_detectors"] = {
            **{k: unseen[k] for k in ("held_out_by", "photos", "faces")}, **(mine[0] if mine else {})}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float) + "\n")
    second = manifest["scorer"].get("second_pack")
    pointer = pointer_name(pack_family(manifest["scorer"].get("model_pack")), embedder_of(second) if second else None)
    (Path(root) / pointer).write_text(target.name + "\n")
    return target


def run(cache_dir: Path, analyzer, forgery_config, per_family: int, authentic_lfw: int, seed: int, enrolled: int,
        families: tuple[str, ...], prior: float, target_fpr: float, resamples: int, calibration_side: str = "A",
        max_other_photos: int | None = None, fit: bool = True, external: bool = True,
        unseen_people: int | None = None, unseen: bool = True, heads: tuple[str, ...] = fusion_fit.HEADS) -> dict:
    """Builds (or reuses) gallery, corpus and scores; returns the report with the scored frame
    under "_frame" and the fitted fusion under "_fusion"."""
    cache_dir = Path(cache_dir)
    aligned_analyzer = type(analyzer)(analyzer.model_config, aligned=True, pack=analyzer.pack)
    gallery_uri = ensure_gallery(cache_dir, SHARED_DIR / "data" / "faces_aligned", aligned_analyzer, enrolled)
    corpus_dir, labels = build_corpus(cache_dir, analyzer.pack, per_family, authentic_lfw, seed, enrolled, families,
                                      max_other_photos=max_other_photos)
    matcher = GalleryMatcher(gallery_uri)
    # Signals do not depend on the fusion: score once (cached) with the hand-made ranking, then
    # apply the configured fusion to them as the scorer would. A configured fusion that no longer
    # fits the scorer's signals (a refit after a detector change) is reported, not fatal.
    scorer = ForgeryScorer(gallery=matcher.gallery, forgery=forgery_config.model_copy(update={"fusion_model": None}),
                           pack=analyzer.pack)
    try:
        configured_scorer = ForgeryScorer(gallery=matcher.gallery, forgery=forgery_config, pack=analyzer.pack,
                                          detectors=scorer.detectors)
        configured_fusion, configured_error = configured_scorer.fusion, None
    except (OSError, ValueError) as exc:
        configured_scorer, configured_fusion, configured_error = scorer, scorer.fusion, f"{type(exc).__name__}: {exc}"
        log.warning("configured fusion %r unusable (%s): the configured section uses %s",
                    forgery_config.fusion_model, configured_error, scorer.fusion.version)
    # Signals depend on the scorer's code, not on the fusion's.
    code = source_digest([p for p in (Path(__file__).resolve().parents[2] / "operators" / "forgery").glob("*.py")
                          if p.name != "fusion.py"])
    key = hashlib.sha256(f"{scorer.model_version}|{matcher.gallery.version}|{code}".encode()).hexdigest()[:10]
    cached = corpus_dir / f"scored-{key}.pkl"
    if cached.exists():
        frame = pd.read_pickle(cached)
    else:
        frame = score_corpus(labels, analyzer, matcher, scorer)
        frame.to_pickle(cached)
    fitted_side = getattr(configured_fusion, "metadata", {}).get("calibration_side")
    eval_sides = [other_side(fitted_side)] if fitted_side in SIDES else list(SIDES)
    generated = pd.Series([r["family"] for r in labels]).value_counts().to_dict()
    report = {"forgery_model": configured_scorer.model_version, "signals_model": scorer.model_version,
              "configured_fusion_error": configured_error, "gallery_version": matcher.gallery.version,
              "model_pack": analyzer.pack.name, "corpus": str(corpus_dir), "inputs": len(labels),
              "inputs_by_family": generated, "faces_scored": int(len(frame)),
              "faces_by_family": frame["family"].value_counts().to_dict(),
              "prior": prior, "target_fpr": target_fpr, "bootstrap_resamples": resamples,
              "configured": configured(frame, configured_fusion, scorer, eval_sides, resamples),
              "fusion_heads": list(heads),
              "leave_one_family_out": leave_one_family_out(frame, scorer.config, prior, target_fpr, resamples,
                                                            heads)}
    if fit:
        scorer_info = {"signals_model": scorer.model_version, "detectors": list(forgery_config.detectors or []),
                       "model_pack": analyzer.pack.name, "gallery_version": matcher.gallery.version,
                       "identity_signal": forgery_config.use_identity_signal,
                       "second_pack": scorer.second.pack.name if scorer.second is not None else None}
        fusion, report["fitted"] = fitted_on_side(frame, scorer, calibration_side, prior, target_fpr, resamples,
                                                  {"scorer": scorer_info}, heads)
        report["_fusion"] = fusion
    if external:
        fusions = {f"configured ({configured_fusion.version})": configured_fusion}
        if fit:
            fusions[f"fitted ({fusion.version})"] = fusion
        report["external_videos"] = external_videos(analyzer, matcher, scorer, fusions)
    if unseen:
        fusions = {f"configured ({configured_fusion.version})": configured_fusion}
        if fit:
            fusions[f"fitted ({fusion.version})"] = fusion
        report["unseen_authentic"] = unseen_authentic.check(cache_dir, labels, analyzer, matcher, scorer, fusions,
                                                            list(forgery_config.detectors or []), resamples, unseen_people)
    report["_frame"] = frame
    report["_data"] = data_description(corpus_dir, frame)
    return report


EXTERNAL_VIDEOS = {"ffpp/original/634.mp4": 0, "ffpp/FaceSwap/634_660.mp4": 1}


def external_videos(analyzer, matcher, scorer, fusions: dict) -> list[dict]:
    """FF++ 634 (authentic) and 634_660 (FaceSwap of 660 onto 634, no VIP involved): per video and
    fusion, frames, VIP-candidate frames, mean fused score, flagged frames and the video verdict
    (vipwatch/evaluation/video_verdicts.py's rule). Not a benchmark family: one pair, for the issue's check
    that the default scores it the right way round."""
    root = SHARED_DIR / "data" / "deepfakes"
    labels = [{"uri": str(root / name), "label": label, "family": "ffpp", "identity": "video:ffpp_634",
               "side": "-", "groups": "video:ffpp_634", "face_box": "null"} for name, label in EXTERNAL_VIDEOS.items()]
    frame = score_corpus([{**r, "label": 0} for r in labels], analyzer, matcher, scorer)
    out = []
    for name, fusion in fusions.items():
        scores, flagged, judged = fusion_fit.apply(fusion, frame, scorer.config)
        rows = frame.assign(forgery_score=scores, identity_id=frame["forgery_identity_id"],
                            verdict=np.where(flagged, VERDICT_SUSPECTED, np.where(judged, VERDICT_AUTHENTIC, VERDICT_UNVERIFIED)))
        for video in video_verdicts(rows).to_dict("records"):
            out.append({"fusion": name, "video": video["image_uri"].split("deepfakes/")[-1],
                        "label": EXTERNAL_VIDEOS[video["image_uri"].split("deepfakes/")[-1]], **{
                            k: video[k] for k in ("frames", "vip_faces", "flagged_faces", "mean_score", "verdict")}})
    return out


def external_markdown(rows: list[dict]) -> str:
    lines = ["| fusion | video | label | frames | VIP-candidate frames | flagged | mean score | video verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['fusion']} | {r['video']} | {'fake' if r['label'] else 'real'} | {r['frames']} | "
                     f"{r['vip_faces']} | {r['flagged_faces']} | {r['mean_score']:.4f} | {r['verdict']} |")
    return "\n".join(lines)
