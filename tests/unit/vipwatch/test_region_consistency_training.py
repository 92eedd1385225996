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
    embeddings = "s3://consistency-models/embeddings.parquet"
    args = ["--lfw", str(root), "--exclude-corpus", str(corpus), "--steps", "3", "--actors", "1",
            "--launder-views", "1", "--embeddings", embeddings]
    summary = main(args + ["--out", out, "--version", "region-consistency-test"])

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
    # Each photo once as published and once laundered; the embeddings are kept for a refit.
    data = manifest["training_data"]
    assert data["laundered_views_per_photo"] == 1 and manifest["recipe"].endswith("laundered")
    assert data["images"] < data["faces"] <= 2 * data["images"]
    refit = main(args + ["--out", "s3://consistency-models/refit", "--version", "region-consistency-refit"])
    refit_manifest = json.loads(storage.read_bytes("s3://consistency-models/refit/manifest.json"))
    assert refit_manifest["training_data"]["faces"] == data["faces"] and refit["version"] == "region-consistency-refit"
    # Embeddings made with another number of views are refused, not trained on under a wrong manifest.
    import pytest

    other_views = args[:args.index("--launder-views") + 1] + ["2"] + args[args.index("--launder-views") + 2:]
    with pytest.raises(ValueError, match="laundered views per photo"):
        main(other_views + ["--out", "s3://consistency-models/wrong", "--version", "region-consistency-wrong"])


def test_laundered_views_are_seeded_copies_that_degrade_the_photo():
    import cv2

    from vipwatch.training.region_consistency import launder_photo, with_laundered_views

    items = [{"uri": f"u{k}", "person": f"p{k}"} for k in range(3)]
    views = with_laundered_views(items, 2)
    assert len(views) == 9 and [v["launder"] for v in views[:3]] == [-1, -1, -1]
    seeds = [v["launder"] for v in views[3:]]
    assert len(set(seeds)) == 6 and min(seeds) >= 0
    photo = cv2.cvtColor(cv2.imread(str(next((LFW / PEOPLE[0]).iterdir()))), cv2.COLOR_BGR2RGB)
    first, again, other = launder_photo(photo, 7), launder_photo(photo, 7), launder_photo(photo, 8)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.dtype == np.uint8 and first.shape[2] == 3 and not np.array_equal(first, photo[:first.shape[0], :first.shape[1]])
