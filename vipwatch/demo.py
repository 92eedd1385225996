"""The whole product on the embedded default, end to end (jobs.demo): a local S3-compatible server
(moto's S3 on 127.0.0.1), reference crops and a crawl corpus from ../shared (photos, two videos
and a few broken files), a gallery with the given pack, the crawl on a local Ray cluster, its
summary, and the Parquet read back with DuckDB. A copy of the results is kept locally."""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from vipwatch.enrol import enroll
from core import storage
from core.config import SHARED_DIR, CrawlConfig, ForgeryConfig, ModelPackConfig
from vipwatch.crawl.run import run_crawl
from vipwatch.s3server import LocalS3Server
from vipwatch.crawl.summary import media_verdicts, read_results, summarise

log = logging.getLogger(__name__)
ENROLLED_PER_IDENTITY = 10
CRAWL_SOURCES = ["photos/face_recognition", "photos/facenet_pytorch", "photos/ultralight", "photos/scrfd",
                 "deepfakes/ffpp"]


def stage_inputs(workdir: Path) -> tuple[Path, Path]:
    """Reference crops (first N per identity) and the crawl corpus, as local trees to upload."""
    references = workdir / "references"
    for identity_dir in sorted((SHARED_DIR / "data" / "faces_aligned").iterdir()):
        (references / identity_dir.name).mkdir(parents=True)
        for image in sorted(identity_dir.iterdir())[:ENROLLED_PER_IDENTITY]:
            shutil.copy(image, references / identity_dir.name / image.name)
    corpus = workdir / "corpus"
    for source in CRAWL_SOURCES:
        shutil.copytree(SHARED_DIR / "data" / source, corpus / source.replace("/", "_"))
    broken = corpus / "broken"
    broken.mkdir()
    (broken / "empty.jpg").write_bytes(b"")
    jpeg = (SHARED_DIR / "data/photos/face_recognition/obama.jpg").read_bytes()
    (broken / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (broken / "notes.jpg").write_text("this is a text file with an image extension\n")
    return references, corpus


def duckdb_preview(output_uri: str) -> list[tuple]:
    import duckdb

    results = read_results(output_uri)  # noqa: F841  (DuckDB scans the Arrow table by name)
    return duckdb.sql("""
        SELECT coalesce(identity_id, '(unknown)') AS identity, count(*) AS faces,
               round(avg(match_score), 3) AS mean_match_score
        FROM results WHERE status = 'ok' GROUP BY 1 ORDER BY faces DESC LIMIT 10""").fetchall()


# Where the demo enrols the same references with ForgeryConfig.second_pack, when asked to.
DEMO_SECOND_GALLERY = "s3://vipwatch-galleries/vips-second-pack"


def run_demo(model: ModelPackConfig, keep: str,
             forgery: ForgeryConfig | None = None) -> tuple[dict, list[tuple], dict]:
    """The demo's summary (with ``local_copy``), the DuckDB faces-per-identity preview and the
    per-medium forgery verdicts. ``forgery``: the crawl's forgery settings (default: the shipped ones)."""
    with tempfile.TemporaryDirectory() as tmp, LocalS3Server() as server:
        log.info("local S3 server at %s", server.endpoint_url)
        references, corpus = stage_inputs(Path(tmp))
        for bucket in ("vipwatch-refs", "vipwatch-crawl", "vipwatch-galleries", "vipwatch-results"):
            server.create_bucket(bucket)
        storage.upload_dir(str(references), "s3://vipwatch-refs/faces_aligned")
        uploaded = storage.upload_dir(str(corpus), "s3://vipwatch-crawl/incoming")
        log.info("uploaded %d crawl inputs", uploaded)

        enrolment = enroll("s3://vipwatch-refs/faces_aligned", model, aligned=True)
        gallery_uri = enrolment.gallery.save("s3://vipwatch-galleries/vips")
        log.info("gallery %s: %d identities, threshold %.3f", enrolment.gallery.version,
                 enrolment.gallery.manifest["identity_count"], enrolment.gallery.match_threshold)

        if forgery is not None and forgery.second_pack is not None and forgery.second_gallery == DEMO_SECOND_GALLERY:
            second = enroll("s3://vipwatch-refs/faces_aligned", forgery.second_pack, aligned=True)
            second.gallery.save(DEMO_SECOND_GALLERY)
            log.info("second pack's gallery %s", second.gallery.version)
        config = CrawlConfig(input="s3://vipwatch-crawl/incoming", gallery="s3://vipwatch-galleries/vips",
                             output="s3://vipwatch-results/demo", model=model,
                             forgery=forgery if forgery is not None else ForgeryConfig())
        result = run_crawl(config)
        summary = {"job_id": result.job_id, "gallery": gallery_uri,
                   **summarise(result.output, result.seconds, result.inputs)}
        preview = duckdb_preview(result.output)
        verdicts = media_verdicts(result.output)
        summary["forgery"] = {k: v for k, v in verdicts.items() if k != "videos"}

        local = Path(keep)
        shutil.rmtree(local, ignore_errors=True)
        (local / "results").mkdir(parents=True)
        fs, path = storage.resolve(result.output)
        pafs.copy_files(path, str(local / "results"), source_filesystem=fs,
                        destination_filesystem=pafs.LocalFileSystem())
        summary["local_copy"] = str(local / "results")
    return summary, preview, verdicts
