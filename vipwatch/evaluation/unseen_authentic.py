"""False alarms on authentic faces that no trained part of the scorer has seen.

The benchmark's authentic faces (LFW people, ../shared photos) are also the training reals of
the SBI artefact detectors, and a fitted fusion sets its threshold on some of them. A detector
scores the faces it learned as real lower than new ones, so a threshold's promise ("at most 0.5%
of authentic faces flagged") checked on those faces can hold there and fail on a crawl. This
check uses the LFW people that every artefact detector in play held out of training (the
validation people in its manifest), less the people the benchmark corpus uses (donors, probes,
the fusion's calibration faces) and the VIPs; each photo is scored as published and each fusion's
verdicts give the false-alarm rate with a bootstrap interval by person and an exact one-sided
95% upper bound.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from scipy.stats import beta

from core import storage
from core.config import SHARED_DIR
from operators.forgery.detectors import parse_spec
from operators.forgery.sbi_detector import SHIPPED, resolve_artifact
from vipwatch.evaluation import fusion_fit
from vipwatch.evaluation.forgery_corpus import find_sources
from vipwatch.evaluation.forgery_scoring import score_corpus

log = logging.getLogger(__name__)
FAMILY = "unseen_authentic"
LFW_PREFIX = "lfw/"


def held_out_lfw_people(detector_specs: list[str]) -> tuple[set[str], list[str]]:
    """LFW folder names held out of training by every SBI detector in ``detector_specs`` (by the
    package's SBI lineage when none is configured, so that configurations with and without one
    are checked on the same people); and the versions of the artefacts it read."""
    uris = [resolve_artifact(uri) for kind, uri in map(parse_spec, detector_specs) if kind == "sbi"] or [str(SHIPPED)]
    people: Optional[set[str]] = None
    versions = []
    for uri in uris:
        manifest = json.loads(storage.read_bytes(storage.join(uri, "manifest.json")))
        versions.append(manifest.get("version", uri))
        validation = manifest["training_data"]["validation"]["identities"]
        names = {v[len(LFW_PREFIX):] for v in validation if v.startswith(LFW_PREFIX)}
        people = names if people is None else people & names
    return people or set(), versions


def corpus_people(labels: list[dict]) -> set[str]:
    """LFW folder names the benchmark corpus uses in any role."""
    used = set()
    for row in labels:
        for group in row["groups"].split("|"):
            if group.startswith("lfw:"):
                used.add(group[len("lfw:"):])
    return used


def label_rows(people: set[str], shared: Path = SHARED_DIR, max_people: Optional[int] = None) -> list[dict]:
    """Every photo of ``people`` that is a non-VIP LFW folder, as label rows for score_corpus."""
    sources = find_sources(shared)
    rows = []
    for name in sorted(people)[:max_people]:
        group = f"lfw:{name}"
        for path in sources.lfw_people.get(group, []):
            rows.append({"uri": str(path), "label": 0, "family": FAMILY, "identity": group, "side": "-",
                         "groups": group, "face_box": "null"})
    return rows


def rate_with_interval(flagged: np.ndarray, groups: np.ndarray, resamples: int, seed: int = 0) -> dict:
    """Share of flagged rows; 95% interval by resampling groups; exact (Clopper-Pearson) one-sided
    95% upper bound over rows, which stays informative when nothing is flagged."""
    flagged, groups = np.asarray(flagged, bool), np.asarray(groups)
    n, k = len(flagged), int(flagged.sum())
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples if members else 0):
        rows = np.concatenate([members[i] for i in rng.integers(len(members), size=len(members))])
        draws.append(flagged[rows].mean())
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (float("nan"), float("nan"))
    upper = float(beta.ppf(0.95, k + 1, n - k)) if n else float("nan")
    return {"flagged": k, "faces": n, "groups": len(members), "rate": k / n if n else float("nan"),
            "low": float(low), "high": float(high), "upper_95_one_sided": upper}


def check(cache_dir: Path, labels: list[dict], analyzer, matcher, scorer, fusions: dict, detector_specs: list[str],
          resamples: int, max_people: Optional[int] = None) -> dict:
    """Scores (cached by scorer, gallery and people) and applies each fusion."""
    held_out, manifests = held_out_lfw_people(detector_specs)
    people = held_out - corpus_people(labels)
    rows = label_rows(people, max_people=max_people)
    key = hashlib.sha256(json.dumps([scorer.model_version, matcher.gallery.version, sorted(r["uri"] for r in rows)])
                         .encode()).hexdigest()[:10]
    cached = Path(cache_dir) / f"unseen-authentic-{key}.pkl"
    if cached.exists():
        frame = pd.read_pickle(cached)
    else:
        frame = score_corpus(rows, analyzer, matcher, scorer)
        cached.parent.mkdir(parents=True, exist_ok=True)
        frame.to_pickle(cached)
    out = {"held_out_by": manifests, "people_held_out": len(held_out), "people_in_corpus_removed":
           len(held_out) - len(people), "photos": len(rows), "faces": int(len(frame)), "fusions": []}
    for name, fusion in fusions.items():
        _, flagged, judged = fusion_fit.apply(fusion, frame, scorer.config)
        out["fusions"].append({"fusion": name, "judged": int(judged.sum()),
                               **rate_with_interval(flagged, frame["group"].to_numpy(), resamples)})
    return out


def markdown(section: dict) -> str:
    lines = [f"Authentic faces no detector trained on: {section['photos']} LFW photos of "
             f"{section['people_held_out'] - section['people_in_corpus_removed']} people held out of SBI training "
             f"({section['people_in_corpus_removed']} more held out but used by the corpus, left out), "
             f"{section['faces']} faces", "",
             "| fusion | faces (people) | judged | flagged | false-alarm rate [95% by person] | one-sided 95% upper |",
             "|---|---|---|---|---|---|"]
    for r in section["fusions"]:
        lines.append(f"| {r['fusion']} | {r['faces']} ({r['groups']}) | {r['judged']} | {r['flagged']} | "
                     f"{r['rate']:.4f} [{r['low']:.4f}, {r['high']:.4f}] | {r['upper_95_one_sided']:.4f} |")
    return "\n".join(lines)
