"""A real S3-compatible server process (moto's S3 service) on 127.0.0.1, for tests, the demo
and the benchmark.

It is a separate process reached over HTTP; nothing patches the S3 client. The process serves
moto's S3 Flask app alone (``python -m vipwatch.s3server PORT``) rather than ``moto_server``,
whose dispatcher works out the AWS service of every request (it lists moto's package directory
each time): S3 only, a GET + HEAD of an object costs the server 5.7 ms of CPU instead of 12.5 ms
with 2,000 objects in the bucket. On the 2-core machine that server shares the cores with the
crawl it serves (docs/performance.md).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional

import boto3

from core.config import StorageConfig

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalS3Server:
    """Start/stop the S3 server process and export the endpoint to this process's environment,
    so Ray workers started afterwards inherit it."""

    def __init__(self, port: Optional[int] = None, seed_file: Optional[str] = None):
        """``seed_file``: a text file of ``bucket/key`` lines, each created as a one-byte object
        inside the server process before it listens (``seed``)."""
        self.port = port or free_port()
        self.seed_file = seed_file
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "LocalS3Server":
        # This interpreter's moto: a moto_server elsewhere on PATH (another Python's, another
        # version) failed multipart uploads here.
        if any(importlib.util.find_spec(module) is None for module in ("moto", "flask", "flask_cors")):
            raise RuntimeError("moto's server is not installed: install the test extra (moto[server])")
        # The server's output (one line per request) goes to VIPWATCH_S3_LOG when set, else to
        # a temporary file whose tail explains a failed start.
        log_path = os.environ.get("VIPWATCH_S3_LOG")
        log_file = open(log_path, "ab") if log_path else tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vipwatch.s3server", str(self.port), *([self.seed_file] if self.seed_file else [])],
            stdout=log_file, stderr=log_file, start_new_session=True,
        )
        self._log = log_file
        for key, value in AWS_ENV.items():
            os.environ.setdefault(key, value)
        os.environ["VIPWATCH_S3_ENDPOINT"] = self.endpoint_url
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        deadline = time.time() + 30 + (600 if self.seed_file else 0)
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the S3 server exited at start: {self._log_tail()}")
                time.sleep(0.2)
        raise RuntimeError(f"the S3 server did not listen on 127.0.0.1:{self.port}")

    def _log_tail(self) -> str:
        if os.environ.get("VIPWATCH_S3_LOG"):
            return f"see {os.environ['VIPWATCH_S3_LOG']}"
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-2000:].decode("utf-8", "replace")

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def storage(self) -> StorageConfig:
        return StorageConfig(endpoint_url=self.endpoint_url)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LocalS3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def seed(seed_file: str, region: str = "us-east-1") -> int:
    """Create a one-byte object for every ``bucket/key`` line of ``seed_file`` in this process's
    moto backend (buckets created as needed): the listing benchmark's and test's 100,000 objects
    in seconds, where PUTs over HTTP run at ~100-350 a second here (docs/performance.md). Only
    the objects' creation skips HTTP; everything the crawl does still goes over it."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    created = 0
    with open(seed_file, encoding="utf-8") as lines:
        for line in lines:
            bucket, _, key = line.rstrip("\n").partition("/")
            if bucket not in backend.buckets:
                backend.create_bucket(bucket, region)
            backend.put_object(bucket, key, b"x", disable_notification=True)
            created += 1
    return created


def serve(port: int, host: str = "127.0.0.1", seed_file: Optional[str] = None) -> None:
    """Run moto's S3 app on host:port until killed (the server process's body)."""
    os.environ.setdefault("MOTO_PORT", str(port))
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    if seed_file:
        seed(seed_file)
    app = create_backend_app("s3")
    app.debug = False
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    serve(int(sys.argv[1]), seed_file=sys.argv[2] if len(sys.argv) > 2 else None)
