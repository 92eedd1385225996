"""Identity signals of two model packs on the same benchmark faces: does a second embedder add
what the first one misses?

Input: two ``jobs.forgery_benchmark`` runs on the same corpus with different packs (their
``faces.csv``). A face of the first run is paired with the face of the second run on the same
image and frame whose box overlaps it most (IoU >= 0.3); unpaired faces are dropped from every
measurement, so the three recipes compared are scored on the same faces. The second pack's
identity signals join as ``pack2:<signal>`` columns; a face is a VIP candidate when either pack
found one. Leave-one-family-out as in the benchmark (fit on the other side, every family but F;
evaluate F's forgeries and the authentic faces), with the VIP head only: these runs have no
artefact detector. An evaluation, not a shipped scorer: the crawl runs one pack.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from vipwatch.evaluation import fusion_fit
from vipwatch.evaluation.forgery_benchmark import lofo_split
from vipwatch.evaluation.forgery_scoring import box_iou
from vipwatch.evaluation.group_bootstrap import bootstrap

NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")
MIN_OVERLAP = 0.3
NO_ALARM = -1.0


def read_faces(path: str) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["bbox"] = [[float(v) for v in NUMBER.findall(str(b))][:4] for b in frame["bbox"]]
    frame["frame_index"] = frame["frame_index"].fillna(-1).astype(int)
    frame["vip"] = frame["vip"].astype(str).str.lower().eq("true")
    return frame


def pair_faces(first: pd.DataFrame, second: pd.DataFrame, min_overlap: float = MIN_OVERLAP) -> pd.DataFrame:
    """First run's rows that have a second-run face on the same image and frame, with that face's
    identity signals as ``pack2:`` columns and ``vip`` = either pack found a candidate."""
    signals = fusion_fit.identity_features(first)
    by_key = {key: rows for key, rows in second.groupby(["image_uri", "frame_index"])}
    keep, partner = [], []
    for index, row in first.iterrows():
        rows = by_key.get((row["image_uri"], row["frame_index"]))
        if rows is None:
            continue
        overlaps = [(box_iou(row["bbox"], box), j) for j, box in zip(rows.index, rows["bbox"])]
        best, j = max(overlaps)
        if best >= min_overlap:
            keep.append(index)
            partner.append(j)
    merged = first.loc[keep].reset_index(drop=True)
    other = second.loc[partner].reset_index(drop=True)
    for name in signals:
        merged[fusion_fit.SECOND_PACK + name] = other[name].to_numpy() if name in other else np.nan
    merged["vip_first"] = merged["vip"].to_numpy(bool)
    merged["vip_second"] = other["vip"].to_numpy(bool)
    merged["vip"] = merged["vip_first"] | merged["vip_second"]
    return merged


def recipes(frame: pd.DataFrame) -> dict[str, tuple[list[str], str]]:
    """name -> (candidate features, which VIP flag): first pack alone, second alone, both."""
    own = [s for s in fusion_fit.identity_features(frame) if not s.startswith(fusion_fit.SECOND_PACK)]
    second = [fusion_fit.SECOND_PACK + s for s in own]
    return {"first": (own, "vip_first"), "second": (second, "vip_second"), "both": (own + second, "vip")}


def leave_one_family_out(frame: pd.DataFrame, features: list[str], vip_column: str, prior: float,
                         target_fpr: float, resamples: int) -> dict:
    frame = frame.assign(vip=frame[vip_column].to_numpy(bool))
    out = {}
    for family in sorted(set(frame.loc[frame["label"] == 1, "family"])):
        labels, alarm, probability, groups, flagged = [], [], [], [], []
        for side in ("A", "B"):
            fit_rows, eval_rows = lofo_split(frame, family, side)
            fit = frame[fit_rows & frame["vip"].to_numpy()]
            head, info = fusion_fit.fit_head(fit, fusion_fit.usable_features(fit, features), prior, target_fpr)
            if head is None:
                raise ValueError(f"leave-one-family-out {family}, evaluated on side {side}: nothing to fit ({info})")
            rows = frame[eval_rows]
            p = head.predict_matrix(fusion_fit.feature_rows(rows, head.columns)).astype(np.float64)
            judged = rows["vip"].to_numpy()
            labels.append(rows["label"].to_numpy())
            alarm.append(np.where(judged, p, NO_ALARM))
            probability.append(np.where(judged, p, np.nan))
            groups.append(rows["group"].to_numpy())
            flagged.append(judged & (p >= head.threshold))
        labels, alarm = np.concatenate(labels), np.concatenate(alarm)
        flagged = np.concatenate(flagged)
        metrics = bootstrap(labels, alarm, np.concatenate(probability), np.concatenate(groups), prior, resamples)
        authentic = labels == 0
        metrics["authentic_flagged"] = int(flagged[authentic].sum())
        metrics["authentic_faces"] = int(authentic.sum())
        out[family] = metrics
    return out


def markdown(results: dict) -> str:
    lines = ["| recipe | family | forged (ids) | authentic (groups) | LOFO AUC [95% CI] | TPR@1%FPR [95% CI] | "
             "authentic flagged |", "|---|---|---|---|---|---|---|"]
    for recipe, families in results.items():
        for family, m in families.items():
            c = m["counts"]
            lines.append(f"| {recipe} | {family} | {c['forged']} ({c['forged_groups']}) | {c['authentic']} "
                         f"({c['authentic_groups']}) | {m['auc']['value']:.3f} [{m['auc']['low']:.2f}, "
                         f"{m['auc']['high']:.2f}] | {m['tpr_at_fpr_1pct']['value']:.3f} "
                         f"[{m['tpr_at_fpr_1pct']['low']:.2f}, {m['tpr_at_fpr_1pct']['high']:.2f}] | "
                         f"{m['authentic_flagged']}/{m['authentic_faces']} |")
    return "\n".join(lines)
