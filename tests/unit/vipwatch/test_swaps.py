"""The swap-set job on real faces_aligned crops."""
import csv

import cv2
import numpy as np

from vipwatch.evaluation.swaps import make_swaps
from tests.support.shared_data import ENROLLED_PER_IDENTITY, FACES_ALIGNED


def test_swaps_layout_labels_and_held_out_sources(tmp_path):
    summary = make_swaps(str(FACES_ALIGNED), str(tmp_path), per_identity=2, seed=3)
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    assert summary["fake"] == 2 * summary["identities"] == sum(r["label"] == "fake" for r in rows)
    enrolled = {str(p) for d in FACES_ALIGNED.iterdir() for p in sorted(d.iterdir())[:ENROLLED_PER_IDENTITY]}
    for row in rows:
        assert row["source_uri"] not in enrolled and row["target_uri"] not in enrolled
        image = cv2.imread(row["uri"])
        assert row["uri"].endswith(".png") and image.shape == (112, 112, 3)
        if row["label"] == "fake":
            assert f"/fake/{row['identity']}/" in row["uri"] and row["target_identity"] != row["identity"]
            # The head (outside the swapped ellipse) stays the target's, the inner face changes.
            target = cv2.imread(row["target_uri"])
            assert np.abs(image[:8].astype(int) - target[:8]).mean() < 3
            assert np.abs(image[50:90, 40:72].astype(int) - target[50:90, 40:72]).mean() > 5
        else:
            assert row["source_uri"] == row["target_uri"]
            assert np.array_equal(image, cv2.imread(row["source_uri"]))
    reals = {r["source_uri"] for r in rows if r["label"] == "real"}
    assert not reals & {r["source_uri"] for r in rows if r["label"] == "fake"}
