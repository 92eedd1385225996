"""Shared fixtures: real data from ../shared, a real S3 server process, a real local Ray cluster,
real model packs. Everything binds to 127.0.0.1."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

from tests.support.shared_data import (DATA, DLIB_PACK, ENROLLED_PER_IDENTITY, FACES_ALIGNED,  # noqa: E402,F401
                                       MODELS, ONNX_PACK, PHOTOS)


@pytest.fixture(scope="session")
def s3_server():
    """An S3 server process (moto's S3, vipwatch/s3server.py) on a free loopback port; the env points boto3/pyarrow at it."""
    from vipwatch.s3server import LocalS3Server

    server = LocalS3Server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray instance for the session (started after the S3 server so that workers
    inherit its endpoint)."""
    import ray

    from vipwatch.ray_cluster import init_ray

    init_ray(num_cpus=2, object_store_mb=1024)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def onnx_analyzer():
    from operators.face_analyzer import FaceAnalyzer

    return FaceAnalyzer(ONNX_PACK)


@pytest.fixture(scope="session")
def onnx_aligned_analyzer(onnx_analyzer):
    """Same loaded models, input mode --aligned (112x112 template crops: detection skipped)."""
    from operators.face_analyzer import FaceAnalyzer

    return FaceAnalyzer(ONNX_PACK, aligned=True, pack=onnx_analyzer.pack)


@pytest.fixture(scope="session")
def enrol_root(tmp_path_factory) -> Path:
    """faces_aligned with only the first ENROLLED_PER_IDENTITY crops of each identity (the rest
    are probes)."""
    root = tmp_path_factory.mktemp("enrol")
    for identity_dir in sorted(FACES_ALIGNED.iterdir()):
        target = root / identity_dir.name
        target.mkdir()
        for image in sorted(identity_dir.iterdir())[:ENROLLED_PER_IDENTITY]:
            shutil.copy(image, target / image.name)
    return root


@pytest.fixture(scope="session")
def onnx_gallery(enrol_root, onnx_aligned_analyzer, tmp_path_factory):
    """ONNX-pack gallery of the 14 faces_aligned identities, saved locally. Returns its root URI."""
    from vipwatch.enrol import enroll

    # The references are aligned crops: an analyzer built for whole photos would try to detect
    # faces in them and reject most.
    enrolment = enroll(str(enrol_root), ONNX_PACK, aligned=True, analyzer=onnx_aligned_analyzer)
    root = tmp_path_factory.mktemp("gallery_onnx")
    enrolment.gallery.save(str(root))
    return str(root)


@pytest.fixture(scope="session")
def dlib_gallery(enrol_root, tmp_path_factory):
    """dlib-pack gallery of the same 14 identities (no cohort), saved locally. Returns its root URI."""
    from vipwatch.enrol import enroll

    enrolment = enroll(str(enrol_root), DLIB_PACK, aligned=True, cohort=None)
    root = tmp_path_factory.mktemp("gallery_dlib")
    enrolment.gallery.save(str(root))
    return str(root)


@pytest.fixture(scope="session")
def swap_dir(tmp_path_factory):
    """Classical face swaps of faces_aligned identities (jobs.make_swaps): real/<id>/, fake/<id>/."""
    from vipwatch.evaluation.swaps import make_swaps

    out = tmp_path_factory.mktemp("scorer_swaps")
    make_swaps(str(FACES_ALIGNED), str(out), per_identity=2, seed=2)
    return out


ALERT_IDENTITIES = ("keanu_reeves", "halle_berry")


@pytest.fixture(scope="session")
def alert_crawl(swap_dir, onnx_gallery, tmp_path_factory):
    """``python -m jobs.crawl --json-logs --aligned`` as its own process (its own local Ray) on
    swaps and reals of two VIPs plus a broken file: a real crawl output with alerts, and the
    job's stdout / stderr. Labels (uri,label) for the report's ROC go to labels.csv."""
    import json
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("alert_crawl")
    inputs = root / "in"
    inputs.mkdir()
    labels = ["uri,label"]
    for identity in ALERT_IDENTITIES:
        for kind, label in (("real", 0), ("fake", 1)):
            for path in sorted((swap_dir / kind / identity).iterdir()):
                target = inputs / f"{kind}_{identity}_{path.name}"
                shutil.copy(path, target)
                labels.append(f"{target},{label}")
    (inputs / "broken.png").write_bytes(b"<html>not an image</html>")
    (root / "labels.csv").write_text("\n".join(labels) + "\n")
    env = {**os.environ, "VIPWATCH_OBJECT_STORE_MB": "512"}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "jobs.crawl", "--json-logs", "--input", str(inputs), "--gallery", onnx_gallery,
               "--output", str(root / "out"), "--job-id", "alerts-test", "--aligned",
               "--model-pack", ONNX_PACK.pack, "--detector-file", ONNX_PACK.detector_file,
               "--embedder-file", ONNX_PACK.embedder_file,
               # The alert tests check the alert path on make_swaps crops, which the hand-made
               # ranking flags one and all; the calibrated default (0.5% false alarms) is measured
               # by jobs.forgery_benchmark, not here.
               "--forgery-fusion", "uncalibrated"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=420, env=env,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-4000:]
    return {"job_uri": str(root / "out" / "alerts-test"), "inputs": len(list(inputs.iterdir())), "labels": str(root / "labels.csv"),
            "summary": json.loads(done.stdout.strip().splitlines()[-1]), "stdout": done.stdout,
            "stderr": done.stderr, "root": root}
