"""Choosing the weak-candidate rate without looking at the family it is judged on (nested
leave-one-family-out).

The rate (``ForgeryConfig.weak_match_fpir``) decides which faces become VIP candidates, and so
which faces a vip-head fusion judges at all: a forgery with no candidate can raise no alarm
(the benchmark's "AUC ceiling"). Picking the rate by the benchmark's leave-one-family-out (LOFO)
AUC over all families lets the held-out family vote for its own rate. Here, for each held-out
family F the rate is chosen by the LOFO AUC of the OTHER families only (F's forgeries dropped
from every inner fit and evaluation); F is then scored by the usual LOFO refit at that rate. The
per-family figure estimates the procedure "choose the rate by LOFO", not one rate chosen on all
families. Input: ``jobs.forgery_benchmark`` runs of one corpus at different rates (their
faces.csv), which differ only in candidates and signals, not in faces.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from vipwatch.evaluation import fusion_fit
from vipwatch.evaluation.forgery_benchmark import NO_ALARM, family_table, lofo_scores

ROW_KEY = ["image_uri", "frame_index", "face_index"]


def check_same_faces(runs: dict[float, pd.DataFrame]) -> None:
    """Runs must hold the same faces in the same order: otherwise their AUCs compare different data."""
    keys = {rate: frame[ROW_KEY].astype(str).agg("|".join, axis=1).tolist() for rate, frame in runs.items()}
    first_rate, first = next(iter(keys.items()))
    for rate, key in keys.items():
        if key != first:
            raise ValueError(f"runs at rate {first_rate} and {rate} hold different faces "
                             f"({len(first)} vs {len(key)} rows): score one corpus with one pack")


def alarm_auc(sub: pd.DataFrame, scores: np.ndarray, judged: np.ndarray) -> float:
    alarm = np.where(judged & np.isfinite(scores), scores, NO_ALARM)
    return float(roc_auc_score(sub["label"].to_numpy(), alarm))


def lofo_auc(frame: pd.DataFrame, family: str, config, prior: float, target_fpr: float,
             heads: tuple[str, ...]) -> float:
    sub, scores, _, judged, _ = lofo_scores(frame, family, config, prior, target_fpr, heads)
    return alarm_auc(sub, scores, judged)


def inner_scores(frame: pd.DataFrame, held_out: str, config, prior: float, target_fpr: float,
                 heads: tuple[str, ...]) -> dict[str, float]:
    """LOFO AUC of every family but ``held_out``, on the frame without ``held_out``'s forgeries."""
    without = frame[(frame["label"] == 0) | (frame["family"] != held_out)].reset_index(drop=True)
    families = sorted(set(without.loc[without["label"] == 1, "family"]))
    return {family: lofo_auc(without, family, config, prior, target_fpr, heads) for family in families}


def nested_lofo(runs: dict[float, pd.DataFrame], config, prior: float, target_fpr: float, resamples: int,
                heads: tuple[str, ...] = fusion_fit.HEADS) -> dict:
    check_same_faces(runs)
    rates = sorted(runs)
    families = sorted(set(runs[rates[0]].loc[runs[rates[0]]["label"] == 1, "family"]))
    out = {"rates": rates, "families": {}}
    for family in families:
        inner = {rate: inner_scores(runs[rate], family, config, prior, target_fpr, heads) for rate in rates}
        mean_inner = {rate: float(np.mean(list(scores.values()))) for rate, scores in inner.items()}
        # Ties go to the lower rate: fewer strangers judged for the same evidence.
        chosen = max(rates, key=lambda rate: (round(mean_inner[rate], 6), -rate))
        refits = {rate: lofo_scores(runs[rate], family, config, prior, target_fpr, heads) for rate in rates}
        sub, scores, flags, judged, _ = refits[chosen]
        table = family_table(sub, scores, flags, judged, prior, resamples)
        out["families"][family] = {
            "inner_mean_auc": mean_inner, "inner_auc": inner, "chosen_rate": chosen,
            "nested": table[family], "authentic_flagged": table["authentic_flagged"],
            "authentic_faces": table["authentic_faces"],
            "fixed_rate_auc": {rate: alarm_auc(refit[0], refit[1], refit[3]) for rate, refit in refits.items()}}
    # The rate a shipped fusion would take: the best mean LOFO AUC over every family.
    overall = {rate: float(np.mean([cell["fixed_rate_auc"][rate] for cell in out["families"].values()]))
               for rate in rates}
    out["all_families_mean_auc"] = overall
    out["all_families_choice"] = max(rates, key=lambda rate: (round(overall[rate], 6), -rate))
    return out


def markdown(result: dict) -> str:
    rates = result["rates"]
    head = ("| held-out family | inner LOFO AUC (other families) at rate " + " / ".join(f"{r:g}" for r in rates)
            + " | chosen rate | nested LOFO AUC [95% CI] | forged v authentic | authentic flagged | "
            "LOFO AUC at each fixed rate |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for family, cell in result["families"].items():
        nested = cell["nested"]
        auc = nested["auc"]
        lines.append(
            f"| {family} | " + " / ".join(f"{cell['inner_mean_auc'][r]:.3f}" for r in rates)
            + f" | {cell['chosen_rate']:g} | {auc['value']:.3f} [{auc['low']:.2f}, {auc['high']:.2f}] | "
            f"{nested['counts']['forged']} v {nested['counts']['authentic']} | {cell['authentic_flagged']}/{cell['authentic_faces']} | "
            + " / ".join(f"{cell['fixed_rate_auc'][r]:.3f}" for r in rates) + " |")
    overall = result["all_families_mean_auc"]
    lines.append("")
    lines.append("mean LOFO AUC over all families at rate " + " / ".join(f"{r:g}" for r in rates) + ": "
                 + " / ".join(f"{overall[r]:.3f}" for r in rates)
                 + f" -> rate chosen on every family: {result['all_families_choice']:g}")
    return "\n".join(lines)
