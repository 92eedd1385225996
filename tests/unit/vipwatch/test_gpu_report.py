"""infra/gpu_check.sh's CPU-side parts: the provider report asks the running libraries (checked
here on a machine without a GPU, where every CUDA path must read as inactive), the nvidia-smi
parser and the per-phase utilisation, and the summary that turns a benchmark report into
images/s per GPU."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from operators.packs.device import CUDA, available_providers
from tests.support.shared_data import MODELS
from vipwatch.bench import gpu_report

REPO = Path(__file__).resolve().parents[3]
DETECTOR = str(MODELS / "scrfd_500m_kps.onnx")

# Written in the format nvidia-smi documents for
# --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500
# (not recorded on a GPU: none was lent to this project), with what a real capture contains
# besides samples: a header from a run without noheader, an [N/A] field, a line cut off when
# the sampler was killed.
SMI_SAMPLE = """\
timestamp, index, utilization.gpu [%], memory.used [MiB]
2026/12/03 08:00:00.000, 0, 0, 415
2026/12/03 08:00:00.000, 1, 0, 415
2026/12/03 08:00:00.500, 0, 3, 415
2026/12/03 08:00:00.500, 1, [N/A], 415
2026/12/03 08:00:10.000, 0, 81, 10240
2026/12/03 08:00:10.000, 1, 0, 415
2026/12/03 08:00:10.500, 0, 93, 11264
2026/12/03 08:00:10.500, 1, 12, 2048
2026/12/03 08:00:11.0"""


def _epoch(text: str) -> float:
    return datetime.strptime(text, gpu_report.SMI_TIME_FORMAT).timestamp()


def test_parser_keeps_samples_and_skips_header_na_and_cut_lines():
    samples = gpu_report.parse_smi(SMI_SAMPLE)
    assert len(samples) == 7  # 9 data-like lines: one [N/A], one cut off
    assert samples[0] == gpu_report.Sample(_epoch("2026/12/03 08:00:00.000"), 0, 0.0, 415.0)
    assert {s.gpu for s in samples} == {0, 1}
    assert samples[-1].utilisation_pct == 12.0 and samples[-1].memory_mib == 2048.0


def test_utilisation_is_split_by_phase_and_gpu():
    samples = gpu_report.parse_smi(SMI_SAMPLE)
    phases = gpu_report.parse_phases(
        f"providers\t{_epoch('2026/12/03 08:00:00.000')}\t{_epoch('2026/12/03 08:00:01.000')}\n"
        f"images\t{_epoch('2026/12/03 08:00:09.000')}\t{_epoch('2026/12/03 08:00:11.000')}\n")
    by_phase = gpu_report.utilisation_by_phase(samples, phases)
    assert by_phase["providers"]["gpus"]["0"] == {"samples": 2, "mean_utilisation_pct": 1.5,
                                                  "peak_utilisation_pct": 3.0, "peak_memory_mib": 415.0}
    assert by_phase["providers"]["gpus"]["1"]["samples"] == 1  # its [N/A] sample dropped
    assert by_phase["images"]["gpus"]["0"]["mean_utilisation_pct"] == 87.0
    assert by_phase["images"]["gpus"]["1"]["peak_memory_mib"] == 2048.0
    assert by_phase["images"]["seconds"] == 2.0


def test_provider_report_asks_a_real_session_and_reads_inactive_cuda_here():
    report = gpu_report.provider_report(DETECTOR, "auto")
    has_cuda = CUDA in available_providers()
    assert report["session_providers"][0] == (CUDA if has_cuda else "CPUExecutionProvider")
    assert report["onnx_on_cuda"] is has_cuda
    assert isinstance(report["torch_cuda"], bool) and isinstance(report["faiss_gpus"], int)
    if not has_cuda:
        assert report["torch_cuda"] is False and report["faiss_gpus"] == 0


def test_provider_report_says_why_when_cuda_is_asked_for_and_absent():
    report = gpu_report.provider_report(DETECTOR, "cuda")
    if CUDA in available_providers():
        assert report["onnx_on_cuda"] is True
    else:
        assert report["onnx_on_cuda"] is False and report["session_providers"] == []
        assert "onnxruntime-gpu" in report["onnx_error"]


def test_summary_reports_images_per_gpu_and_missing_steps(tmp_path):
    images = tmp_path / "images.log"
    report = {"mode": "images", "images": 2000, "pipeline_images_per_s": 300.0, "raw_images_per_s": 320.0,
              "ratio": 0.94, "forgery_stage": True, "model_pack": "onnx:scrfd+mobilefacenet",
              "resources": {"analyzer_actors": 2, "analyzer_num_gpus": 1.0}}
    images.write_text("some log line\n{not json\n" + json.dumps(report) + "\n")
    (tmp_path / "providers.log").write_text(json.dumps({"onnx_on_cuda": True}) + "\n")
    (tmp_path / "gallery.log").write_text("Traceback: killed by timeout\n")
    (tmp_path / "smi.csv").write_text(SMI_SAMPLE)
    (tmp_path / "phases.tsv").write_text("")
    done = subprocess.run([sys.executable, "-m", "vipwatch.bench.gpu_report", "summary",
                           *[f"--{n}={tmp_path / f}" for n, f in [("samples", "smi.csv"), ("phases", "phases.tsv"),
                                                                   ("images", "images.log"), ("gallery", "gallery.log"),
                                                                   ("providers", "providers.log")]]],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["images"]["gpus_used"] == 2 and summary["images"]["images_per_s_per_gpu"] == 150.0
    assert summary["providers"] == {"onnx_on_cuda": True}
    assert summary["gallery"].startswith("no report")
