"""python -m jobs.train_forgery --real URI --out URI [--aligned] [--epochs N --image-size 96 --backbone small]

Trains the identity-agnostic SBI artefact detector on real faces alone (self-blended
pseudo-fakes) with Ray Train, and writes model.pt + manifest.json at --out (dir or s3://)."""
from __future__ import annotations

import argparse
import json

from operators.forgery.sbi_model import BACKBONES
from vipwatch.training.sbi_train import TrainOptions, run_training
from vipwatch.cli import add_model_args, model_config, parse_job_args


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", required=True, help="real face images: <root>/<identity>/<image> or a flat prefix")
    parser.add_argument("--out", required=True, help="artefact URI (dir or s3://): model.pt + manifest.json")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--backbone", default="small", choices=sorted(BACKBONES))
    parser.add_argument("--batch-size", type=int, default=32, help="real faces per step (each adds its blend)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of identities held out")
    parser.add_argument("--max-per-identity", type=int, default=None)
    parser.add_argument("--val-real", default=None, help="external real face crops to report AUC on")
    parser.add_argument("--val-fake", default=None, help="external fake face crops to report AUC on")
    parser.add_argument("--val-pad", type=float, default=0.5,
                        help="reflect-pad external crops by this fraction so the detector finds tight faces")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--use-gpu", action="store_true")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    manifest = run_training(TrainOptions(
        real=args.real, out=args.out, aligned=args.aligned, model=model_config(args), epochs=args.epochs,
        image_size=args.image_size, backbone=args.backbone, batch_size=args.batch_size, lr=args.lr,
        val_fraction=args.val_fraction, max_per_identity=args.max_per_identity, val_real=args.val_real,
        val_fake=args.val_fake, val_pad=args.val_pad, num_workers=args.num_workers, use_gpu=args.use_gpu,
        cpus_per_worker=args.cpus_per_worker, seed=args.seed))
    summary = {"out": args.out, "version": manifest["version"], "metrics": manifest["metrics"],
               "history": manifest["history"], "faces": manifest["training_data"]["real"]["faces"],
               "split": manifest["training_data"]["split"]}
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
