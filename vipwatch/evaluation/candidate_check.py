"""How weak / inner-face candidates of a VIP look: authentic strangers vs swaps of the VIP's inner
face onto the same strangers' heads (jobs.forgery_candidates).

Gallery: the first ``enrolled`` crops of each faces_aligned identity. Strangers: one LFW photo each
of people who are none of the VIPs (by name). Swaps: a VIP's held-out crop (never enrolled) gives
the inner face, a stranger's aligned crop the head (operators/forgery/face_swap.py, feather and
Poisson blends). Every face goes through the crawl's analyzer, matcher and scorer; each is read
against its VIP (the scorer's candidate for strangers, the source VIP for swaps) with every signal,
so signals the scorer withholds from candidates can be compared too.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.face_swap import swap_face
from operators.forgery.identity_signal import region_embeddings
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from vipwatch.enrol import embed_images, enroll
from vipwatch.evaluation.size_sweep import group_bootstrap_auc

COMPARED = ("identity_deficit", "context_deficit", "inner_deficit", "inner_whole_gap", "inner_outer_gap",
            "identity_cohort_z", "inner_cohort_z")


def _aligned(table) -> list[np.ndarray]:
    return [np.frombuffer(raw, np.uint8).reshape(112, 112, 3) for raw in table.column("aligned_face").to_pylist()]


def measure(data_dir: Path, model, people: int, swaps: int, enrolled: int = 10, seed: int = 0) -> pd.DataFrame:
    faces_aligned = data_dir / "faces_aligned"
    vips = sorted(d.name for d in faces_aligned.iterdir() if d.is_dir())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "enrol"
        for vip in vips:
            (root / vip).mkdir(parents=True)
            for image in sorted((faces_aligned / vip).iterdir())[:enrolled]:
                shutil.copy(image, root / vip / image.name)
        photos = FaceAnalyzer(model)
        crops = FaceAnalyzer(model, aligned=True, pack=photos.pack)
        gallery = enroll(str(root), model, aligned=True, analyzer=crops, cohort=None).gallery
        matcher = GalleryMatcher(gallery=gallery)
        scorer = ForgeryScorer(gallery=matcher.gallery, pack=photos.pack)
        names = {v.replace("_", "").lower() for v in vips}
        lfw = sorted(p for p in (data_dir / "lfw" / "lfw-deepfunneled").iterdir()
                     if p.is_dir() and p.name.replace("_", "").lower() not in names)
        chosen = lfw[::max(1, len(lfw) // people)][:people]
        strangers = matcher(embed_images([str(sorted(p.iterdir())[0]) for p in chosen], photos, ImageDecoder()))
        strangers = strangers.filter(np.array([s == "ok" for s in strangers.column("status").to_pylist()]))
        heads = _aligned(strangers)
        donors = [Path(uri).parent.name for uri in strangers.column("image_uri").to_pylist()]
        rng = np.random.default_rng(seed)
        uris, sources, swap_donors = [], [], []
        for k, head in enumerate(heads[:swaps]):
            vip = vips[k % len(vips)]
            source = sorted((faces_aligned / vip).iterdir())[enrolled + k % 4]
            fake = swap_face(cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB), head,
                             ("feather", "poisson")[k % 2], rng)
            path = Path(tmp) / f"swap_{k:04d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(fake, cv2.COLOR_RGB2BGR))
            uris.append(str(path))
            sources.append(vip)
            swap_donors.append(donors[k])
        fakes = matcher(embed_images(uris, crops, ImageDecoder()))
        records = []
        for table, label in ((strangers, 0), (fakes, 1)):
            scored = scorer(table)
            whole = np.asarray(table.column("embedding").to_pylist(), np.float32)
            inner, outer = region_embeddings(photos.pack, _aligned(table))
            for k, row in enumerate(scored.to_pylist()):
                donor = donors[k] if label == 0 else swap_donors[k]
                target = row["forgery_identity_id"] if label == 0 else sources[k]
                kind = "match" if row["identity_id"] else ("candidate" if row["forgery_identity_id"] else "none")
                record = {"label": label, "kind": kind, "group": f"lfw:{donor}", "vip": target,
                          "candidate_of_vip": row["forgery_identity_id"] == target and target is not None,
                          "verdict": row["verdict"]}
                if target is not None:
                    record.update(scorer.references.read(target, whole[k], inner[k], outer[k]).values)
                records.append(record)
    return pd.DataFrame(records)


def candidate_table(frame: pd.DataFrame) -> list[dict]:
    """Per signal, among faces that are weak / inner candidates of their VIP: AUC swaps vs strangers."""
    rows = frame[(frame["kind"] == "candidate") & frame["candidate_of_vip"]]
    labels, groups = rows["label"].to_numpy(), rows["group"].to_numpy()
    out = []
    for name in COMPARED:
        value, low, high = group_bootstrap_auc(labels, rows[name].to_numpy(np.float64), groups)
        out.append({"signal": name, "strangers": int((labels == 0).sum()), "swaps": int((labels == 1).sum()),
                    "auc": value, "auc_95": [low, high]})
    return out
