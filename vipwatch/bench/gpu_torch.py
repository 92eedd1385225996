"""python -m vipwatch.bench.gpu_torch --crops CROPS.npz [--backbone-weights ONNX] [--out REPORT.json]

The forgery stage's torch paths on each device this machine has (cpu, and cuda where torch sees
a GPU), without Ray, so it runs on a bare GPU machine that has torch but none of the crawl's
other packages (infra/gpu_check.sh needs them):
- the SBI detector as the scorer loads it (``SBIDetector``, the artefact inside the package):
  faces per second by batch size, and the largest difference of its P(fake) between devices;
- the SBI training step as ``jobs.train_forgery`` runs it (the MobileFaceNet-backed network,
  AdamW, BCE on logits, from the shipped weights): steps and images per second.
CROPS.npz holds ``crops``: (N, 224, 224, 3) uint8 context crops as the crawl makes them
(``python -m vipwatch.bench.gpu_torch --make-crops CROPS.npz`` writes them from ../shared).
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from operators.forgery.sbi_detector import SBIDetector, resolve_artifact
from operators.forgery.sbi_model import model_inputs, network_state, normalise, read_artifact
from vipwatch.training.sbi_network import MOBILEFACENET, build_network

DETECTOR = "sbi-mfn-v6"


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def detector_figures(crops: np.ndarray, batch_sizes: list[int], faces: int) -> dict:
    out, scores = {}, {}
    repeated = [crops[k % len(crops)] for k in range(faces)]
    for device in devices():
        rows = []
        for batch in batch_sizes:
            detector = SBIDetector(DETECTOR, device=device, batch_size=batch)
            detector.score(repeated[:batch])  # warm-up: kernels, allocator
            _sync(device)
            started = time.perf_counter()
            detector.score(repeated)
            _sync(device)
            seconds = time.perf_counter() - started
            rows.append({"batch_size": batch, "faces": faces, "seconds": round(seconds, 3),
                         "faces_per_s": round(faces / seconds, 1)})
        scores[device] = detector.score(list(crops))
        out[device] = rows
    if "cuda" in scores:
        out["max_abs_p_difference_cuda_vs_cpu"] = float(np.abs(scores["cuda"] - scores["cpu"]).max())
    out["mean_p_fake"] = {d: float(s.mean()) for d, s in scores.items()}
    return out


def training_figures(crops: np.ndarray, backbone_weights: str | None, batches: list[int], steps: int) -> dict:
    manifest, model_bytes = read_artifact(resolve_artifact(DETECTOR))
    size = int(manifest["input"]["size"])
    window = tuple(int(v) for v in manifest["input"]["context_window"])
    inputs = model_inputs(list(crops), size, window)
    rng = np.random.default_rng(0)
    out = {}
    for device in devices():
        network = build_network("mfn", backbone_weights or str(MOBILEFACENET))
        network.load_state_dict(network_state(model_bytes), strict=True)
        network = network.to(device).train()
        optimizer = torch.optim.AdamW(network.parameters(), lr=1e-5, weight_decay=1e-4)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        rows = []
        for batch in batches:
            # The CPU steps are few: they only anchor the ratio.
            count = steps if device == "cuda" else max(2, steps // 25)
            picks = [rng.integers(len(inputs), size=batch) for _ in range(count + 2)]
            labels = [torch.from_numpy(rng.integers(2, size=batch).astype(np.float32)).to(device) for _ in picks]
            images = [normalise(torch.from_numpy(inputs[p])).to(device) for p in picks]
            for k in range(count + 2):
                if k == 2:  # two warm-up steps
                    _sync(device)
                    started = time.perf_counter()
                loss = loss_fn(network(images[k]), labels[k])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            _sync(device)
            seconds = time.perf_counter() - started
            rows.append({"images_per_step": batch, "steps": count, "seconds": round(seconds, 3),
                         "steps_per_s": round(count / seconds, 2), "images_per_s": round(count * batch / seconds, 1),
                         "last_loss": round(float(loss.item()), 4)})
        out[device] = rows
    return out


def make_crops(path: Path, count: int) -> None:
    """Context crops of LFW photos from ../shared, through the crawl's ONNX analyzer."""
    # lazy: the crawl's analyzer needs insightface and onnxruntime, which the GPU image lacks
    from core.config import SHARED_DIR, ModelPackConfig  # lazy: as above
    from operators.face_analyzer import FaceAnalyzer  # lazy: as above
    from vipwatch.training.sbi_eval import context_crops  # lazy: as above

    photos = sorted((SHARED_DIR / "data" / "lfw" / "lfw-deepfunneled").glob("*/*.jpg"))[::97][:count]
    analyzer = FaceAnalyzer(ModelPackConfig(pack=str(SHARED_DIR / "models"), detector_file="scrfd_500m_kps.onnx",
                                            embedder_file="mobilefacenet_128.onnx", device="cpu"))
    _, crops, _ = context_crops([(str(p), p.read_bytes()) for p in photos], analyzer)
    np.savez_compressed(path, crops=crops)
    print(json.dumps({"crops": str(path), "faces": int(len(crops))}))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", help="npz with (N, 224, 224, 3) uint8 'crops'")
    parser.add_argument("--make-crops", default=None, metavar="NPZ", help="write context crops from ../shared and stop")
    parser.add_argument("--make-count", type=int, default=64)
    parser.add_argument("--backbone-weights", default=None, help="mobilefacenet_128.onnx (default: ../shared/models)")
    parser.add_argument("--batch-sizes", default="64,256", help="detector batch sizes")
    parser.add_argument("--faces", type=int, default=2048, help="faces scored per timing")
    parser.add_argument("--train-batches", default="16,256", help="images per training step (the job uses 16)")
    parser.add_argument("--train-steps", type=int, default=100, help="timed steps on cuda (cpu: 1/25 of them)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.make_crops:
        make_crops(Path(args.make_crops), args.make_count)
        return {}
    crops = np.load(args.crops)["crops"]
    report = {"host": platform.node(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
              "cuda_available": torch.cuda.is_available(), "cpu_threads": torch.get_num_threads(),
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "detector": DETECTOR, "crops": int(len(crops)),
              "sbi_detector": detector_figures(crops, [int(b) for b in args.batch_sizes.split(",")], args.faces),
              "sbi_training_step": training_figures(crops, args.backbone_weights,
                                                    [int(b) for b in args.train_batches.split(",")], args.train_steps)}
    if torch.cuda.is_available():
        report["cuda_peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
