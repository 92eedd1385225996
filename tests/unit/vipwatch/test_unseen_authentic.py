"""The false-alarm check on authentic faces no detector trained on: which people it may use, and
its rate, interval and exact upper bound on hand-checked cases."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vipwatch.evaluation import unseen_authentic
from vipwatch.evaluation.forgery_corpus import find_sources, lfw_name


def write_manifest(root, people):
    root.mkdir(parents=True)
    identities = [f"lfw/{p}" for p in people] + ["faces_aligned/someone"]
    (root / "manifest.json").write_text(json.dumps({"training_data": {"validation": {"identities": identities}}}))
    return f"sbi:{root}"


def test_people_are_those_every_sbi_detector_held_out(tmp_path):
    first = write_manifest(tmp_path / "a", ["Ann_One", "Bob_Two", "Cy_Three"])
    second = write_manifest(tmp_path / "b", ["Bob_Two", "Cy_Three", "Di_Four"])
    people, manifests = unseen_authentic.held_out_lfw_people([first, second, "mesonet:/nowhere/Meso4.h5"])
    assert people == {"Bob_Two", "Cy_Three"} and len(manifests) == 2


def test_without_an_sbi_detector_the_shipped_lineage_split_is_used():
    people, manifests = unseen_authentic.held_out_lfw_people([])
    latest, _ = unseen_authentic.held_out_lfw_people(["sbi:sbi-mfn-v5"])
    # Every continuation keeps v1's held-out people (enforced by --init-from).
    assert people == latest and len(people) > 100 and manifests == ["sbi-mfn-v1"]


def test_corpus_people_and_vips_are_left_out():
    labels = [{"groups": "barack_obama|lfw:Ann_One"}, {"groups": "lfw:Bob_Two"}, {"groups": "photo:crowd/x"}]
    assert unseen_authentic.corpus_people(labels) == {"Ann_One", "Bob_Two"}
    sources = find_sources()
    vip_in_lfw = next(lfw_name(x) for x, photos in sources.vip_photos.items() if photos)
    stranger = sorted(sources.lfw_people)[0][len("lfw:"):]
    rows = unseen_authentic.label_rows({vip_in_lfw, stranger})
    assert rows and {r["groups"] for r in rows} == {f"lfw:{stranger}"}
    assert all(r["label"] == 0 and r["family"] == unseen_authentic.FAMILY for r in rows)


def test_rate_interval_and_exact_upper_bound():
    none = unseen_authentic.rate_with_interval(np.zeros(527, bool), np.arange(527) // 2, resamples=50)
    # No alarm in n faces: the one-sided 95% bound is 1 - 0.05 ** (1 / n) (about 3 / n).
    assert none["flagged"] == 0 and none["rate"] == 0 and none["groups"] == 264
    assert none["upper_95_one_sided"] == pytest.approx(1 - 0.05 ** (1 / 527), rel=1e-6)
    flagged = np.array([1, 0, 0, 0, 1, 0, 0, 0], bool)
    some = unseen_authentic.rate_with_interval(flagged, np.array([0, 0, 1, 1, 2, 2, 3, 3]), resamples=200)
    assert some["rate"] == 0.25 and some["low"] <= 0.25 <= some["high"] and some["high"] <= 0.5
    assert some["upper_95_one_sided"] > 0.25
