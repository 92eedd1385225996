"""python -m jobs.evaluate_sbi --model models/forgery/sbi-mfn-v1 [--compare mesonet:<h5>] [model pack args]

Held-out figures of an SBI artefact (and of any --compare detector on the same faces): FF++
634 vs 634_660 frame AUC (bootstrap over 1-s blocks), the MesoNet samples, and authentic
held-out LFW identities vs their self-blends (bootstrap over identities). JSON last line."""
from __future__ import annotations

import argparse
import json

from operators.face_analyzer import FaceAnalyzer
from operators.forgery.detectors import load_detectors
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.training.sbi_eval import ffpp_pair, held_out_identities, lfw_held_out, mesonet_samples


def _line(name: str, result: dict) -> str:
    ci = result.get("auc_95ci")
    interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return (f"{name}: AUC {result['auc']:.3f}{interval} (real {result['real']}, fake {result['fake']}; "
            f"mean P(fake) real {result['mean_score_real']:.3f} / fake {result['mean_score_fake']:.3f})")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="SBI artefact (dir or s3://)")
    parser.add_argument("--compare", action="append", default=[], metavar="KIND:URI",
                        help="another artefact detector scored on the same faces (e.g. mesonet:<h5>)")
    parser.add_argument("--frame-interval", type=float, default=0.2, help="seconds between scored video frames")
    parser.add_argument("--lfw-max-images", type=int, default=300)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--skip", action="append", default=[], choices=["ffpp", "mesonet", "lfw"])
    add_model_args(parser)
    args = parse_job_args(parser, argv)

    detectors = load_detectors([f"sbi:{args.model}", *args.compare])
    analyzer = FaceAnalyzer(model_config(args))
    out = {"model": args.model, "versions": {d.name: d.version for d in detectors}, "model_pack": analyzer.pack.name}
    if "ffpp" not in args.skip:
        out["ffpp_634_vs_634_660"] = ffpp_pair(detectors, analyzer, args.frame_interval, rounds=args.bootstrap)
        for name, result in out["ffpp_634_vs_634_660"]["detectors"].items():
            print(_line(f"FF++ 634 vs 634_660 frames, {name}", result)
                  + f"; video means {result['video_mean']['real']:.3f} / {result['video_mean']['fake']:.3f}")
    if "mesonet" not in args.skip:
        out["mesonet_samples"] = mesonet_samples(detectors, analyzer)
        for name, result in out["mesonet_samples"]["detectors"].items():
            print(f"MesoNet samples, {name}: {json.dumps(result['scores'])} right way round: {result['right_way_round']}")
    if "lfw" not in args.skip:
        out["lfw_held_out"] = lfw_held_out(detectors, analyzer, held_out_identities(args.model),
                                           args.lfw_max_images, rounds=args.bootstrap)
        for variant, block in out["lfw_held_out"]["variants"].items():
            for name, result in block["detectors"].items():
                print(_line(f"LFW held-out ({out['lfw_held_out']['identities']} people) real vs self-blend, "
                            f"{variant}, {name}", result))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
