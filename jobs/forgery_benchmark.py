"""python -m jobs.forgery_benchmark [--per-family N] [--authentic-lfw N] [--prior P] [--write-fusion DIR] [--out DIR]

The forgery benchmark (docs/forgery.md): four manipulation families made from ../shared (swap,
reenact, whole_face, make_swaps), laundered like web images, against authentic faces of VIPs
and non-VIPs at every size; identities split into two sides. Prints, per family, AUC, TPR at
1% FPR and ECE with bootstrap 95% intervals by identity, for the configured scorer, for
leave-one-family-out refits, and for a fusion fitted on the calibration side at --prior;
authentic false alarms by face size. Writes DIR/report.json; --write-fusion DIR also writes
the fitted fusion as a versioned artefact (fusion.json + manifest.json). A last check counts false
alarms on LFW people that no artefact detector trained on and the corpus does not use
(vipwatch/evaluation/unseen_authentic.py). JSON last line.
Generated images and scores are cached under --cache-dir (a rerun with the same sizes and
scorer only refits).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from core.config import SHARED_DIR
from operators.face_analyzer import FaceAnalyzer
from vipwatch.cli import add_forgery_args, add_model_args, forgery_config, model_config, parse_job_args
from vipwatch.evaluation import forgery_benchmark as bench
from vipwatch.evaluation.forgery_families import FAMILIES
from vipwatch.evaluation.forgery_scoring import ensure_gallery


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/vipwatch/forgery-benchmark"))
    parser.add_argument("--out", default="forgery-benchmark", help="report directory (report.json, faces.csv)")
    parser.add_argument("--per-family", type=int, default=120, help="forgeries per family (both sides together)")
    parser.add_argument("--authentic-lfw", type=int, default=300, help="authentic LFW photos of non-VIPs")
    parser.add_argument("--max-other-photos", type=int, default=None, help="cap on ../shared photo groups")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--enrolled", type=int, default=10, help="gallery crops per VIP (never probes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior", type=float, default=0.01,
                        help="expected share of forgeries among crawled VIP faces: fitted fusions output "
                             "P(forgery) at this base rate")
    parser.add_argument("--target-fpr", type=float, default=0.005, help="authentic faces flagged at the threshold")
    parser.add_argument("--calibration-side", default="A", choices=["A", "B"])
    parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples (by identity / group)")
    parser.add_argument("--fusion-heads", default="vip,generic", choices=["vip,generic", "vip"],
                        help="heads the refits fit: 'vip' leaves faces without a VIP candidate unverified, and "
                             "generic signals (artefact, region consistency) only join the vip head")
    parser.add_argument("--write-fusion", default=None, help="write the fitted fusion artefact under this directory")
    parser.add_argument("--no-external-videos", action="store_true",
                        help="skip the FF++ 634 / 634_660 check (e.g. while choosing signals, so it is not tuned to)")
    parser.add_argument("--no-unseen-authentic", action="store_true",
                        help="skip the false-alarm check on LFW people no artefact detector trained on")
    parser.add_argument("--unseen-people", type=int, default=None, help="cap on that check's people (all by default)")
    add_model_args(parser)
    add_forgery_args(parser)
    # The benchmark's default pack is the ONNX one from ../shared (fast on 2 cores).
    parser.set_defaults(model_pack=str(SHARED_DIR / "models"), detector_file="scrfd_500m_kps.onnx",
                        embedder_file="mobilefacenet_128.onnx")
    args = parse_job_args(parser, argv)
    analyzer = FaceAnalyzer(model_config(args), threads=1)
    if args.second_pack and not args.second_gallery:
        # The second pack's gallery: the same faces_aligned crops as the first, enrolled with it.
        second = model_config(args).model_copy(update={
            "pack": args.second_pack, "embedder_file": args.second_embedder_file, "detector_file": None})
        args.second_gallery = ensure_gallery(Path(args.cache_dir), SHARED_DIR / "data" / "faces_aligned",
                                            FaceAnalyzer(second, aligned=True, threads=1), args.enrolled)
    report = bench.run(Path(args.cache_dir), analyzer, forgery_config(args), args.per_family, args.authentic_lfw,
                       args.seed, args.enrolled, tuple(args.families.split(",")), args.prior, args.target_fpr,
                       args.bootstrap, args.calibration_side, args.max_other_photos,
                       external=not args.no_external_videos, unseen_people=args.unseen_people,
                       unseen=not args.no_unseen_authentic, heads=tuple(args.fusion_heads.split(",")))
    frame, fusion, data = report.pop("_frame"), report.pop("_fusion"), report.pop("_data")
    command = "python -m jobs.forgery_benchmark " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                       else sys.argv[1:]))
    if args.write_fusion:
        report["fusion_artefact"] = str(bench.write_fusion_artefact(fusion, Path(args.write_fusion), report["fitted"],
                                                                    data, command, report.get("unseen_authentic")))
    report["data"] = data
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2, default=float)
    frame.drop(columns=["reasons"]).to_csv(os.path.join(args.out, "faces.csv"), index=False)
    print(f"forgery_model: {report['forgery_model']}\ngallery: {report['gallery_version']}  "
          f"pack: {report['model_pack']}\ninputs by family: {report['inputs_by_family']}\n"
          f"faces by family: {report['faces_by_family']}\n")
    print(bench.markdown(report["configured"], "configured scorer") + "\n")
    print(bench.markdown(report["leave_one_family_out"], f"leave-one-family-out refits (prior {args.prior})") + "\n")
    print(bench.markdown(report["fitted"], f"fusion fitted on side {args.calibration_side} ({fusion.version}, "
                                           f"prior {args.prior})") + "\n")
    summary = {"out": args.out, "forgery_model": report["forgery_model"], "fitted_fusion": fusion.version,
               "fusion_artefact": report.get("fusion_artefact"),
               **{f"{section}_auc": {f: round(r["auc"]["value"], 4) for f, r in report[section]["families"].items()
                                     if isinstance(r, dict) and "auc" in r}
                  for section in ("configured", "leave_one_family_out", "fitted")},
               "configured_false_alarm_rate": report["configured"]["families"]["authentic_false_alarm_rate"],
               "fitted_false_alarm_rate": report["fitted"]["families"]["authentic_false_alarm_rate"]}
    if "external_videos" in report:
        print("FF++ pair (not a family; video 634 is an authentic benchmark input on side "
              f"{data['corpus'].get('video_side', '?')}):\n" + bench.external_markdown(report["external_videos"]) + "\n")
        summary["ffpp_video_verdicts"] = {f"{r['fusion'].split(' ')[0]}:{r['video']}": r["verdict"]
                                          for r in report["external_videos"]}
    if "unseen_authentic" in report:
        print(bench.unseen_authentic.markdown(report["unseen_authentic"]) + "\n")
        summary["unseen_authentic_false_alarms"] = {r["fusion"].split(" ")[0]: f"{r['flagged']}/{r['faces']}"
                                                   for r in report["unseen_authentic"]["fusions"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
