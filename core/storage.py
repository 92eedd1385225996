"""Local paths and s3:// URIs through one pyarrow.fs interface.

The S3 endpoint comes from ``StorageConfig`` (``VIPWATCH_S3_ENDPOINT`` / ``AWS_ENDPOINT_URL``),
so the same code reads real S3 and the local test server.
"""
from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import urlparse

import pyarrow.fs as pafs

from core.config import StorageConfig

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".avif"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def s3_filesystem(storage: Optional[StorageConfig] = None) -> pafs.S3FileSystem:
    storage = storage or StorageConfig()
    kwargs = {
        "region": storage.region,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=storage.retry_attempts),
    }
    if storage.endpoint_url:
        parsed = urlparse(storage.endpoint_url)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "http"
    return pafs.S3FileSystem(**kwargs)


def resolve(uri: str, storage: Optional[StorageConfig] = None) -> tuple[pafs.FileSystem, str]:
    """Return (filesystem, path inside it). s3://bucket/key -> (S3FileSystem, 'bucket/key')."""
    if is_s3(uri):
        return s3_filesystem(storage), uri[len("s3://"):].rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def to_uri(fs: pafs.FileSystem, path: str) -> str:
    """Inverse of resolve: a filesystem path back to the URI a user would type."""
    return f"s3://{path}" if isinstance(fs, pafs.S3FileSystem) else path


def normalise(uri: str) -> str:
    """The canonical spelling of a URI: absolute local path, or s3://bucket/key."""
    fs, path = resolve(uri)
    return to_uri(fs, path)


def join(uri: str, *parts: str) -> str:
    if is_s3(uri):
        return posixpath.join(uri.rstrip("/"), *parts)
    return str(Path(uri).joinpath(*parts))


def list_files(uri: str, extensions: Optional[Iterable[str]] = None,
               storage: Optional[StorageConfig] = None) -> list[str]:
    """Recursively list files under a prefix (sorted URIs). Extensions filter case-insensitively."""
    fs, path = resolve(uri, storage)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        infos = [info]
    elif info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"nothing at {uri}")
    else:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    exts = {e.lower() for e in extensions} if extensions else None
    out = []
    for file_info in infos:
        if file_info.type != pafs.FileType.File:
            continue
        if exts is not None and posixpath.splitext(file_info.path)[1].lower() not in exts:
            continue
        out.append(to_uri(fs, file_info.path))
    return sorted(out)


def read_bytes(uri: str, storage: Optional[StorageConfig] = None) -> bytes:
    fs, path = resolve(uri, storage)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(uri: str, data: bytes, storage: Optional[StorageConfig] = None) -> None:
    fs, path = resolve(uri, storage)
    parent = posixpath.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def exists(uri: str, storage: Optional[StorageConfig] = None) -> bool:
    fs, path = resolve(uri, storage)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def delete_dir(uri: str, storage: Optional[StorageConfig] = None) -> None:
    fs, path = resolve(uri, storage)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def upload_dir(local_dir: str, uri: str, storage: Optional[StorageConfig] = None) -> int:
    """Copy a local tree to a URI (used by the demo and tests to seed the S3 server)."""
    dst_fs, dst_path = resolve(uri, storage)
    dst_fs.create_dir(dst_path, recursive=True)
    pafs.copy_files(str(Path(local_dir).resolve()), dst_path,
                    source_filesystem=pafs.LocalFileSystem(), destination_filesystem=dst_fs)
    return len(list_files(uri, storage=storage))
