"""python -m jobs.train_forgery --real-one-face lfw=URI [--real photos=URI] [--real-aligned faces_aligned=URI]
       --out URI [--cache URI] [--epochs N --epoch-fraction F --batch-size B --backbone mfn]

Trains the identity-agnostic SBI artefact detector on real faces alone (self-blended
pseudo-fakes) with Ray Train, and writes model.pt + manifest.json at --out (dir or s3://).
Each source is [NAME=]URI; the name keys the manifest's counts and licence terms. Runs the same
on a GPU cluster with --use-gpu (one GPU per Ray Train worker)."""
from __future__ import annotations

import argparse
import json
import os
import tempfile

from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.training.sbi_faces import RealSource
from vipwatch.training.sbi_network import BACKBONES
from vipwatch.training.sbi_train import TrainOptions, run_training


def _source(value: str, **kind) -> RealSource:
    name, sep, uri = value.partition("=")
    if not sep or "/" in name or ":" in name:
        name, uri = os.path.basename(value.rstrip("/")) or "real", value
    return RealSource(name=name, root=uri, **kind)


def sources(args) -> list[RealSource]:
    out = [_source(v, aligned=args.aligned, upsample=0 if args.aligned else 1) for v in args.real or []]
    out += [_source(v, one_face=True) for v in args.real_one_face or []]
    out += [_source(v, aligned=True) for v in args.real_aligned or []]
    if not out:
        raise SystemExit("give at least one of --real, --real-one-face, --real-aligned")
    if len({s.name for s in out}) != len(out):
        raise SystemExit(f"source names must differ: {[s.name for s in out]}")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", action="append", help="[NAME=]URI of real photos: every face is used")
    parser.add_argument("--real-one-face", action="append",
                        help="[NAME=]URI, <root>/<identity>/<image>, the central face of each image (LFW)")
    parser.add_argument("--real-aligned", action="append", help="[NAME=]URI of 112 ArcFace crops, <root>/<identity>/")
    parser.add_argument("--out", required=True, help="artefact URI (dir or s3://): model.pt + manifest.json")
    parser.add_argument("--cache", default=None, help="face cache URI (reused when it holds the same sources)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-fraction", type=float, default=1.0, help="share of the faces each epoch samples")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--max-train-minutes", type=float, default=None,
                        help="stop training after this long (the epoch in progress ends there)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="mfn", choices=list(BACKBONES))
    parser.add_argument("--backbone-weights", default=None, help="ONNX recogniser for --backbone mfn")
    parser.add_argument("--batch-size", type=int, default=16, help="real faces per step (each adds its blend)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--head-lr-factor", type=float, default=10.0)
    parser.add_argument("--val-source", default=None, help="source whose held-out identities validate (default: largest)")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="share of its identities held out")
    parser.add_argument("--max-val-faces", type=int, default=400)
    parser.add_argument("--max-per-identity", type=int, default=None)
    parser.add_argument("--val-real", default=None, help="external real face crops to report AUC on")
    parser.add_argument("--val-fake", default=None, help="external fake face crops to report AUC on")
    parser.add_argument("--val-pad", type=float, default=0.5,
                        help="edge-pad external crops by this fraction so the detector finds tight faces")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--use-gpu", action="store_true")
    # Ray Data gets what the workers leave: on a 2-CPU node a 1-CPU worker left its reads too
    # little to ever start. Torch threads are 1 either way.
    parser.add_argument("--cpus-per-worker", type=float, default=0.5)
    parser.add_argument("--data-cpus", type=float, default=0.5, help="CPUs of the pair-making Ray Data actor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", default=None, metavar="ARTEFACT",
                        help="SBI artefact (dir or s3://) whose weights this run continues from; it must "
                             "have held out the same people (same sources, --val-*, --seed)")
    parser.add_argument("--checkpoint-dir", default=None,
                        help="keep Ray Train's per-epoch checkpoints (model.pt) here, so a run cut short leaves weights")
    parser.add_argument("--version", default=None, help="artefact version (default: sbi-<backbone><size>@<sha8>)")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    manifest = run_training(TrainOptions(
        real=sources(args), out=args.out, cache=args.cache or tempfile.mkdtemp(prefix="sbi-faces-"),
        model=model_config(args), epochs=args.epochs, epoch_fraction=args.epoch_fraction, max_steps=args.max_steps,
        max_train_minutes=args.max_train_minutes,
        image_size=args.image_size, backbone=args.backbone, backbone_weights=args.backbone_weights,
        batch_size=args.batch_size, lr=args.lr, head_lr_factor=args.head_lr_factor, val_source=args.val_source,
        val_fraction=args.val_fraction, max_val_faces=args.max_val_faces, max_per_identity=args.max_per_identity,
        val_real=args.val_real, val_fake=args.val_fake, val_pad=args.val_pad, num_workers=args.num_workers,
        use_gpu=args.use_gpu, cpus_per_worker=args.cpus_per_worker, data_cpus=args.data_cpus, seed=args.seed,
        version=args.version, init_from=args.init_from, checkpoint_dir=args.checkpoint_dir))
    summary = {"out": args.out, "version": manifest["version"], "metrics": manifest["metrics"],
               "history": manifest["history"], "timing": manifest["timing"],
               "train_faces": manifest["training_data"]["train"], "cache": manifest["training_data"]["cache"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
