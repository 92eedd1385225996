"""Local paths and s3:// URIs through one pyarrow.fs interface.

The S3 endpoint comes from ``StorageConfig`` (``VIPWATCH_S3_ENDPOINT`` / ``AWS_ENDPOINT_URL``),
so the same code reads real S3 and the local test server.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Iterable, Iterator, Optional
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
    if is_s3(uri):
        # What resolve + to_uri give, without building an S3FileSystem (~2 ms each): manifests
        # normalise one URI per line.
        return "s3://" + uri[len("s3://"):].rstrip("/")
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


LISTING_PAGE = 1000


def in_pages(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive lists of at most ``size`` items (itertools.batched, Python >= 3.12)."""
    page: list[str] = []
    for item in items:
        page.append(item)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def iter_file_pages(uri: str, extensions: Optional[Iterable[str]] = None,
                    storage: Optional[StorageConfig] = None) -> Iterator[list[str]]:
    """The files under a prefix as they are listed, a page (at most LISTING_PAGE URIs) at a time,
    so a caller never holds the whole listing: S3 through ListObjectsV2 pages (keys in UTF-8
    binary order within one listing), local directories directory by directory (no order).
    pyarrow.fs has no paged listing in Python (``get_file_info(FileSelector)`` returns every
    entry at once), so S3 pages come from boto3's paginator."""
    fs, path = resolve(uri, storage)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"nothing at {uri}")
    exts = {e.lower() for e in extensions} if extensions else None

    def wanted(name: str) -> bool:
        return exts is None or posixpath.splitext(name)[1].lower() in exts

    if info.type == pafs.FileType.File:
        if wanted(path):
            yield [to_uri(fs, path)]
    elif isinstance(fs, pafs.S3FileSystem):
        yield from _s3_pages(path, wanted, storage)
    else:
        files = (os.path.join(directory, name) for directory, _, names in os.walk(path, followlinks=True)
                 for name in names if wanted(name))
        yield from in_pages((full for full in files if os.path.isfile(full)), LISTING_PAGE)


def _s3_pages(path: str, wanted, storage: Optional[StorageConfig]) -> Iterator[list[str]]:
    import boto3  # lazy: only S3 listings need it
    from botocore.config import Config

    storage = storage or StorageConfig()
    bucket, _, key = path.partition("/")
    prefix = key.rstrip("/") + "/" if key else ""
    client = boto3.client("s3", endpoint_url=storage.endpoint_url or None, region_name=storage.region,
                          config=Config(retries={"max_attempts": storage.retry_attempts, "mode": "standard"}))
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LISTING_PAGE})
    for response in pages:
        # Keys ending in "/" are directory markers, not files (pyarrow.fs skips them too).
        page = [f"s3://{bucket}/{item['Key']}" for item in response.get("Contents", ())
                if not item["Key"].endswith("/") and wanted(item["Key"])]
        if page:
            yield page


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
