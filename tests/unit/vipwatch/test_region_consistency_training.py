"""jobs.train_region_consistency end to end on a few real LFW people: faces found and embedded by
a Ray Data actor on the local cluster (127.0.0.1), a few optimiser steps, an artefact on the S3
server that RegionConsistency loads; VIPs and a benchmark corpus's people are never trained on."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np

from tests.support.shared_data import DATA

LFW = DATA / "lfw" / "lfw-deepfunneled"
PEOPLE = [p.name for p in sorted(LFW.iterdir()) if len(list(p.iterdir())) >= 2][:8]


def test_few_steps_write_a_loadable_artefact_without_excluded_people(ray_cluster, s3_server, tmp_path):
    from core import storage
    from jobs.train_region_consistency import main
    from operators.forgery.region_consistency import RegionConsistency

    root = tmp_path / "lfw"
    for person in PEOPLE[:7]:
        shutil.copytree(LFW / person, root / person)
    # A folder named after a VIP of faces_aligned (../shared's LFW copy has none of theirs).
    shutil.copytree(LFW / PEOPLE[7], root / "Keanu_Reeves")
    corpus = tmp_path / "labels.csv"
    with open(corpus, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["uri", "groups"])
        writer.writeheader()
        writer.writerow({"uri": "x.jpg", "groups": f"barack_obama|lfw:{PEOPLE[0]}"})
    s3_server.create_bucket("consistency-models")
    out = "s3://consistency-models/tiny"
    summary = main(["--lfw", str(root), "--exclude-corpus", str(corpus), "--out", out, "--steps", "3",
                    "--actors", "1", "--version", "region-consistency-test"])

    manifest = json.loads(storage.read_bytes(storage.join(out, "manifest.json")))
    trained = set(manifest["training_data"]["identities"])
    assert trained and trained <= set(PEOPLE[1:7])
    assert manifest["training_data"]["excluded_people"]["benchmark_corpus"] == 1
    assert manifest["embedder_id"].startswith("dlib_resnet_v1@") and summary["version"] == "region-consistency-test"
    held_out = manifest["metrics"]["held_out"]
    assert held_out["people"] >= 1 and held_out["faces"] + manifest["metrics"]["training"]["faces"] == \
        manifest["training_data"]["faces"]
    heads = RegionConsistency.load(out)
    vectors = np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32)
    values = heads.inconsistency(vectors, vectors)
    assert values.shape == (3,) and np.isfinite(values).all()
    assert manifest["authentic_cosine"]["spread"] > 0
