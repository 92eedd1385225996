"""A real S3-compatible server process (moto_server) on 127.0.0.1, for tests and the demo.

It is a separate process reached over HTTP; nothing patches the S3 client.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

import boto3

from vipwatch.config import StorageConfig

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
    """Start/stop ``moto_server`` and export the endpoint to this process's environment,
    so Ray workers started afterwards inherit it."""

    def __init__(self, port: Optional[int] = None):
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "LocalS3Server":
        # The pinned moto beside this interpreter first: a moto_server elsewhere on PATH (another
        # Python's, another version) failed multipart uploads here.
        beside = os.path.join(os.path.dirname(sys.executable), "moto_server")
        exe = beside if os.path.exists(beside) else shutil.which("moto_server")
        if exe is None:
            raise RuntimeError("moto_server not found: install the test extra (moto[server])")
        self.process = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        for key, value in AWS_ENV.items():
            os.environ.setdefault(key, value)
        os.environ["VIPWATCH_S3_ENDPOINT"] = self.endpoint_url
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("moto_server exited at start")
                time.sleep(0.2)
        raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{self.port}")

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

    def __enter__(self) -> "LocalS3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
