"""Shared command-line options and logging set-up, so every job spells them the same way."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from core.config import ForgeryConfig, ModelPackConfig


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model pack")
    group.add_argument("--model-pack", default="dlib",
                       help="dlib | dlib:cnn | an insightface-format ONNX directory or s3:// prefix")
    group.add_argument("--detector", default="auto", choices=["auto", "scrfd", "yunet"])
    group.add_argument("--detector-file", default=None, help="ONNX file name inside the pack directory")
    group.add_argument("--embedder-file", default=None, help="ONNX file name inside the pack directory")
    group.add_argument("--det-size", type=int, default=640)
    group.add_argument("--det-threshold", type=float, default=0.5)
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    group.add_argument("--dlib-upsample", type=int, default=1,
                       help="dlib HOG upsampling: 1 finds faces down to ~40 px at ~3x the cost of 0 (~80 px)")
    group.add_argument("--aligned", action="store_true",
                       help="inputs are already 112x112 ArcFace-aligned crops: detection is skipped")


def add_forgery_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("forgery scoring")
    group.add_argument("--forgery-detector", action="append", default=None, metavar="KIND:URI",
                       help="artefact detector, repeatable (mesonet:<h5>, sbi:<artefact>, sbi:shipped = sbi-mfn-v1, sbi:sbi-mfn-v2, sbi:sbi-mfn-v3, sbi:sbi-mfn-v4, sbi:sbi-mfn-v5, sbi:sbi-mfn-v6); default: "
                            "the ones the forgery fusion was fitted with (sbi:sbi-mfn-v6 for both shipped defaults). 'none' for no artefact detector")
    group.add_argument("--forgery-fusion", default=None,
                       help="fusion artefact (jobs.calibrate JSON or a jobs.forgery_benchmark artefact directory); "
                            "default: the calibrated fusion shipped in the package; 'uncalibrated' for the "
                            "hand-made ranking")
    group.add_argument("--no-forgery", action="store_true", help="skip forgery scoring")
    group.add_argument("--no-identity-signal", action="store_true", help="artefact detectors only")
    group.add_argument("--second-pack", default=None, metavar="PACK",
                       help="opt-in: a second model pack (dlib | ONNX directory) whose embedder reads the identity "
                            "signals again as pack2:<signal>; needs --second-gallery and a fusion fitted with it")
    group.add_argument("--second-embedder-file", default=None, help="ONNX file name inside --second-pack")
    group.add_argument("--second-gallery", default=None, help="gallery of the same identities enrolled with --second-pack")
    group.add_argument("--weak-match-fpir", type=float, default=None,
                       help="a face below the match threshold is checked against its nearest VIP (whole or inner "
                            "face) when it scores above that VIP's impostor quantile at this rate; 1 = every face "
                            "(default: the rate the forgery fusion was fitted at, else 0.10)")
    group.add_argument("--region-consistency", default=None, metavar="shipped|off|URI",
                       help="inner-face vs outer-ring consistency heads (jobs.train_region_consistency): 'shipped' "
                            "= the package's heads for each pack's embedder (default), 'off', or an artefact URI")
    group.add_argument("--consistency-gate", default=None, choices=["artefact", "identity"],
                       help="which faces region consistency does not judge: 'artefact' = those the artefact "
                            "detectors' quality gate withholds (under 32 px between the eyes, or blurred); "
                            "'identity' = only those under --consistency-min-eye-px (default: as the forgery "
                            "fusion was fitted)")
    group.add_argument("--consistency-min-eye-px", type=float, default=None,
                       help="the 'identity' gate's floor, px between the eyes (default 20, the matcher's)")


def absolute_uri(uri: str) -> str:
    """Ray workers need not share the driver's working directory: a local path goes absolute."""
    local = Path(uri)
    return str(local.resolve()) if "://" not in uri and local.exists() else uri


def forgery_config(args: argparse.Namespace) -> ForgeryConfig:
    config = ForgeryConfig(enabled=not args.no_forgery, use_identity_signal=not args.no_identity_signal)
    if args.forgery_fusion:
        config.fusion_model = absolute_uri(args.forgery_fusion)
    if getattr(args, "second_pack", None):
        config.second_pack = ModelPackConfig(pack=absolute_uri(args.second_pack), embedder_file=args.second_embedder_file,
                                             device=getattr(args, "device", "auto"))
        config.second_gallery = absolute_uri(args.second_gallery) if args.second_gallery else None
        ForgeryConfig.model_validate(config.model_dump())
    if getattr(args, "weak_match_fpir", None) is not None:
        config.weak_match_fpir = args.weak_match_fpir
    if getattr(args, "region_consistency", None):
        spec = args.region_consistency
        config.region_consistency = spec if spec in ("shipped", "off") else absolute_uri(spec)
    if getattr(args, "consistency_gate", None):
        config.consistency_gate = args.consistency_gate
    if getattr(args, "consistency_min_eye_px", None) is not None:
        config.consistency_min_inter_ocular_px = args.consistency_min_eye_px
    if args.forgery_detector:
        config.detectors = [d for d in args.forgery_detector if d != "none"]
    return config


def model_config(args: argparse.Namespace) -> ModelPackConfig:
    return ModelPackConfig(pack=args.model_pack, detector=args.detector, detector_file=args.detector_file,
                           embedder_file=args.embedder_file, det_size=args.det_size,
                           det_threshold=args.det_threshold, device=args.device,
                           dlib_upsample=args.dlib_upsample)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                           "message": record.getMessage()})


def setup_logging(json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs or os.environ.get("VIPWATCH_JSON_LOGS") == "1":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def add_logging_args(parser: argparse.ArgumentParser, also: str = "") -> None:
    parser.add_argument("--json-logs", action="store_true",
                        help="every vipwatch log line on stderr as one JSON object (also VIPWATCH_JSON_LOGS=1)" + also)


def parse_job_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Every job's arguments, --json-logs included, parsed; logging set up from them."""
    if "--json-logs" not in parser._option_string_actions:
        add_logging_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.json_logs)
    return args
