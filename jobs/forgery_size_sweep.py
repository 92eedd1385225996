"""python -m jobs.forgery_size_sweep --forgery-detector KIND:URI [...] [--model-pack P] [--out report.json]

Scores authentic faces and known fakes from ../shared at controlled inter-ocular distances
(8..80 px) and blur levels with the given artefact detectors, and prints one table per sweep:
by inter-ocular bin and by sharpness bin, counts, share of faces with P(fake) >= 0.5 per class
(mean in brackets), AUC with a 95% interval resampling people / photos / videos
(vipwatch/evaluation/size_sweep.py). The size / quality gate's thresholds (ForgeryConfig
min_inter_ocular_px, min_sharpness) come from this table.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from core.config import SHARED_DIR
from operators.forgery.detectors import load_detectors
from operators.packs import load_model_pack
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation import size_sweep

log = logging.getLogger("jobs.forgery_size_sweep")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forgery-detector", action="append", required=True, metavar="KIND:URI")
    parser.add_argument("--data", default=str(SHARED_DIR / "data"))
    parser.add_argument("--lfw-people", type=int, default=150)
    parser.add_argument("--video-step-s", type=float, default=0.5)
    parser.add_argument("--video-frames", type=int, default=24)
    parser.add_argument("--out", default=None, help="JSON report path")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    pack = load_model_pack(model_config(args), threads=2)
    detectors = load_detectors(args.forgery_detector)
    faces = size_sweep.collect_faces(pack, Path(args.data), args.lfw_people, args.video_step_s, args.video_frames)
    log.info("%d source faces (%d fake)", len(faces), sum(f.label for f in faces))
    records = size_sweep.score_sweep(faces, detectors)
    names = [d.name for d in detectors]
    size_table = size_sweep.summarise(records, names, "size", "iod", size_sweep.IOD_TARGETS)
    blur_table = size_sweep.summarise(records, names, "blur", "sharpness", size_sweep.SHARPNESS_BINS)
    print(size_sweep.format_table("by inter-ocular distance (px, image downscaled to it)", size_table, names))
    print(size_sweep.format_table(f"by sharpness of the aligned crop (faces at {size_sweep.BLUR_IOD} px, "
                                  f"Gaussian blur sigma {size_sweep.BLUR_SIGMAS})", blur_table, names))
    result = {"detectors": [f"{d.name}={d.version}" for d in detectors], "model_pack": pack.embedder_id,
              "source_faces": len(faces), "fake_faces": sum(f.label for f in faces),
              "by_inter_ocular_px": size_table, "by_sharpness": blur_table}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("by_")}))
    return result


if __name__ == "__main__":
    main()
