"""python -m jobs.train_region_consistency --out DIR [--model-pack dlib | ONNX dir --embedder-file F]
       [--lfw ../shared/data/lfw/lfw-deepfunneled] [--exclude-corpus labels.csv ...] [--per-person 2]
       [--launder-views N] [--embeddings embeddings.parquet]

Trains the region-consistency heads (operators/forgery/region_consistency.py) for one pack's
embedder on authentic LFW faces and writes heads.npz + manifest.json at --out. People left out:
the VIPs of ../shared/data/faces_aligned, every LFW person a benchmark corpus uses (its
labels.csv, --exclude-corpus) and the people the SBI lineage holds out (the unseen-authentic
check's), so no figure of the forgery benchmark is measured on a face the heads saw."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from core import storage
from core.config import SHARED_DIR
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation.forgery_corpus import lfw_name
from vipwatch.evaluation.unseen_authentic import corpus_people, held_out_lfw_people
from vipwatch.ray_cluster import init_ray
from vipwatch.training.region_consistency import run

LFW_LICENCE = "Labeled Faces in the Wild: research use (../shared/README.md)"


def excluded_people(corpus_labels: list[str], faces_aligned: Path) -> dict[str, set[str]]:
    out = {"vips": {lfw_name(p.name) for p in faces_aligned.iterdir() if p.is_dir()} if faces_aligned.is_dir() else set(),
           "sbi_held_out": held_out_lfw_people([])[0], "benchmark_corpus": set()}
    for labels in corpus_labels:
        with open(labels, newline="") as handle:
            out["benchmark_corpus"] |= corpus_people(list(csv.DictReader(handle)))
    return out


def photos(lfw_root: str, excluded: set[str], per_person: int, max_people: int | None) -> list[dict]:
    by_person: dict[str, list[str]] = {}
    for uri in storage.list_files(storage.normalise(lfw_root), storage.IMAGE_EXTENSIONS):
        person = uri.rstrip("/").split("/")[-2]
        if person not in excluded:
            by_person.setdefault(person, []).append(uri)
    people = sorted(by_person)[:max_people]
    return [{"uri": uri, "person": person} for person in people for uri in sorted(by_person[person])[:per_person]]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="artefact URI (dir or s3://)")
    parser.add_argument("--lfw", default=str(SHARED_DIR / "data" / "lfw" / "lfw-deepfunneled"),
                        help="<root>/<person>/<photo> of authentic photos, one labelled face each")
    parser.add_argument("--exclude-corpus", action="append", default=[],
                        help="a forgery benchmark corpus's labels.csv: its LFW people are not trained on")
    parser.add_argument("--per-person", type=int, default=2, help="photos per person")
    parser.add_argument("--max-people", type=int, default=None)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--actors", type=int, default=2, help="embedding actors (one CPU each)")
    parser.add_argument("--launder-views", type=int, default=0,
                        help="laundered copies (random downscale + JPEG) of each photo added as faces")
    parser.add_argument("--embeddings", default=None,
                        help="Parquet of the region embeddings: reused if present, else written")
    parser.add_argument("--version", required=True, help="e.g. region-consistency-dlib-v1")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    excluded = excluded_people(args.exclude_corpus, SHARED_DIR / "data" / "faces_aligned")
    items = photos(args.lfw, set().union(*excluded.values()), args.per_person, args.max_people)
    init_ray()
    manifest = run(items, model_config(args), args.out, args.version, steps=args.steps, actors=args.actors,
                   launder_views=args.launder_views, embeddings_uri=args.embeddings, data={
        "source": args.lfw, "licence": LFW_LICENCE, "per_person": args.per_person,
        "excluded_people": {k: len(v) for k, v in excluded.items()},
        "excluded_corpora": args.exclude_corpus})
    summary = {"out": args.out, "version": manifest["version"], "embedder_id": manifest["embedder_id"],
               "metrics": manifest["metrics"], "authentic_cosine": manifest["authentic_cosine"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
