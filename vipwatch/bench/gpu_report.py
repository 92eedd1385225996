"""The CPU-side parts of infra/gpu_check.sh: which CUDA paths are actually active, GPU
utilisation per phase from nvidia-smi samples, and the one-line summary.

    python -m vipwatch.bench.gpu_report providers --model PATH.onnx [--device auto|cuda|cpu]
    python -m vipwatch.bench.gpu_report summary --samples smi.csv --phases phases.tsv \
        --images images.json --gallery gallery.json --providers providers.json

"Actually active" means asked of the running libraries, not of the installed packages: an
onnxruntime InferenceSession's get_providers() (onnxruntime falls back to CPU, with only a
warning, when the CUDA libraries do not load), torch.cuda.is_available() (the pinned torch may be
the CPU build) and faiss.get_num_gpus().
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from operators.packs import device as packs_device

# nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits
SMI_FIELDS = "timestamp,index,utilization.gpu,memory.used"
SMI_TIME_FORMAT = "%Y/%m/%d %H:%M:%S.%f"


def provider_report(model_path: str, device: str = "auto") -> dict:
    """Open one real onnxruntime session on ``model_path`` with the providers the crawl would ask
    for, and ask each library what it actually uses."""
    import onnxruntime

    report: dict = {"onnxruntime_version": onnxruntime.__version__,
                    "onnxruntime_available": onnxruntime.get_available_providers(), "device": device}
    try:
        requested = packs_device.select_providers(device)
        session = onnxruntime.InferenceSession(model_path, providers=requested)
        report.update(requested=requested, session_providers=session.get_providers())
        report["onnx_on_cuda"] = session.get_providers()[0] == packs_device.CUDA
    except Exception as exc:  # a CUDA request that cannot be met is what this report is for
        report.update(requested=None, session_providers=[], onnx_on_cuda=False, onnx_error=str(exc)[:500])
    try:
        import torch

        report.update(torch_version=torch.__version__, torch_cuda=bool(torch.cuda.is_available()),
                      torch_gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0)
    except Exception as exc:
        report.update(torch_cuda=False, torch_error=str(exc)[:200])
    try:
        import faiss

        report["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except Exception as exc:
        report.update(faiss_gpus=0, faiss_error=str(exc)[:200])
    return report


@dataclass(frozen=True)
class Sample:
    time: float  # seconds since the epoch (the machine's local clock, as nvidia-smi prints it)
    gpu: int
    utilisation_pct: float
    memory_mib: float


def parse_smi(text: str) -> list[Sample]:
    """Lines of ``nvidia-smi --query-gpu=SMI_FIELDS --format=csv,noheader,nounits -lms N``.
    Unparseable lines (a header, "[N/A]", a line cut off when the sampler was stopped) are skipped."""
    samples = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            when = datetime.strptime(parts[0], SMI_TIME_FORMAT).timestamp()
            samples.append(Sample(when, int(parts[1]), float(parts[2]), float(parts[3])))
        except ValueError:
            continue
    return samples


def parse_phases(text: str) -> list[tuple[str, float, float]]:
    """``name<TAB>start_epoch<TAB>end_epoch`` per line, as gpu_check.sh writes them (date +%s.%N)."""
    phases = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            phases.append((parts[0], float(parts[1]), float(parts[2])))
    return phases


def utilisation_by_phase(samples: list[Sample], phases: list[tuple[str, float, float]]) -> dict:
    """Per phase and GPU: samples, mean and peak utilisation, peak memory."""
    out: dict = {}
    for name, start, end in phases:
        inside = [s for s in samples if start <= s.time <= end]
        per_gpu = {}
        for gpu in sorted({s.gpu for s in inside}):
            mine = [s for s in inside if s.gpu == gpu]
            per_gpu[str(gpu)] = {"samples": len(mine),
                                 "mean_utilisation_pct": round(sum(s.utilisation_pct for s in mine) / len(mine), 1),
                                 "peak_utilisation_pct": max(s.utilisation_pct for s in mine),
                                 "peak_memory_mib": max(s.memory_mib for s in mine)}
        out[name] = {"seconds": round(end - start, 1), "gpus": per_gpu}
    return out


def last_json_line(path: Path) -> dict | None:
    """The benchmark's report (its last stdout line), or None when the step failed or timed out."""
    if not path.exists():
        return None
    for line in reversed(path.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def summary(providers: dict | None, images: dict | None, gallery: dict | None, utilisation: dict) -> dict:
    resources = (images or {}).get("resources", {})
    gpus_used = max(1, math.ceil(resources.get("analyzer_actors", 1) * resources.get("analyzer_num_gpus", 0)))
    out = {"providers": providers, "utilisation": utilisation}
    if images:
        rate = images.get("pipeline_images_per_s")
        out["images"] = {"images": images.get("images"), "pipeline_images_per_s": rate,
                         "raw_images_per_s": images.get("raw_images_per_s"), "ratio": images.get("ratio"),
                         "gpus_used": gpus_used,
                         "images_per_s_per_gpu": round(rate / gpus_used, 2) if rate else None,
                         "forgery_stage": images.get("forgery_stage"), "model_pack": images.get("model_pack")}
    else:
        out["images"] = "no report (step failed or hit its time cap; see its log)"
    if gallery:
        out["gallery"] = [{k: row.get(k) for k in ("dim", "size", "kind", "nprobe", "efSearch", "device",
                                                    "queries_per_s", "top1_identity_recall")}
                          for row in gallery.get("results", [])]
    else:
        out["gallery"] = "no report (step failed or hit its time cap; see its log)"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    providers = commands.add_parser("providers")
    providers.add_argument("--model", required=True, help="an ONNX file of the pack (e.g. the detector)")
    providers.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    summarise = commands.add_parser("summary")
    for name in ("samples", "phases", "images", "gallery", "providers"):
        summarise.add_argument(f"--{name}", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "providers":
        print(json.dumps(provider_report(args.model, args.device)), flush=True)
        return 0
    samples = parse_smi(args.samples.read_text()) if args.samples.exists() else []
    phases = parse_phases(args.phases.read_text()) if args.phases.exists() else []
    report = summary(last_json_line(args.providers), last_json_line(args.images), last_json_line(args.gallery),
                     utilisation_by_phase(samples, phases))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
