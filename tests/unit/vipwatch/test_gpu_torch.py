"""vipwatch.bench.gpu_torch, the torch-only GPU check (run on the lent H200 in session 29; docs/
performance.md "GPU"): here, on a machine without a GPU, it makes context crops of real LFW
photos through the crawl's analyzer, scores them with the shipped SBI detector and times real
training steps of its network, and reports the CPU alone; its imports stay free of the crawl's
other model libraries, which that machine lacks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from vipwatch.bench import gpu_torch

REPO = Path(__file__).resolve().parents[3]


def test_reports_the_detector_and_a_training_step_on_each_device(tmp_path):
    crops_path = tmp_path / "crops.npz"
    gpu_torch.main(["--make-crops", str(crops_path), "--make-count", "6"])
    crops = np.load(crops_path)["crops"]
    assert crops.ndim == 4 and crops.shape[1:] == (224, 224, 3) and crops.dtype == np.uint8 and len(crops) >= 4
    report = gpu_torch.main(["--crops", str(crops_path), "--faces", "8", "--batch-sizes", "4", "--train-batches", "4",
                             "--train-steps", "50", "--out", str(tmp_path / "report.json")])
    assert report["cuda_available"] is False and set(report["sbi_detector"]) == {"cpu", "mean_p_fake"}
    (scoring,) = report["sbi_detector"]["cpu"]
    assert scoring["faces"] == 8 and scoring["faces_per_s"] > 0
    assert 0 < report["sbi_detector"]["mean_p_fake"]["cpu"] < 1
    (step,) = report["sbi_training_step"]["cpu"]
    assert step["steps"] == 2 and step["images_per_step"] == 4 and step["last_loss"] > 0
    assert (tmp_path / "report.json").is_file()


def test_imports_no_model_library_but_torch_and_onnx():
    """The GPU image has torch and onnx, not insightface, onnxruntime-gpu, Ray or FAISS."""
    code = ("import sys, vipwatch.bench.gpu_torch as g\n"
            "from operators.forgery.sbi_detector import SBIDetector\n"
            "from vipwatch.training.sbi_network import build_network\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'insightface', 'onnxruntime', 'ray', 'faiss', "
            "'dlib', 'boto3'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
