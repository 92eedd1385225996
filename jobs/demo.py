"""python -m jobs.demo: the whole product on the embedded default, end to end.

Starts a local S3-compatible server (moto's S3 on 127.0.0.1), uploads reference crops and a
crawl corpus from ../shared (photos, two videos and a few broken files), builds a gallery with
the default dlib pack, runs the crawl on a local Ray cluster, prints the summary, and reads the
Parquet back with DuckDB. A copy of the results is left in ./out/demo/ for querying.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from vipwatch.enrol import enroll
from core import storage
from vipwatch.cli import parse_job_args
from core.config import REPO_ROOT, SHARED_DIR, CrawlConfig, ModelPackConfig
from vipwatch.crawl.run import run_crawl
from vipwatch.s3server import LocalS3Server
from vipwatch.crawl.summary import media_verdicts, read_results, summarise

log = logging.getLogger("jobs.demo")
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-pack", default=ModelPackConfig().pack)
    parser.add_argument("--keep", default=str(REPO_ROOT / "out" / "demo"), help="local copy of the results")
    args = parse_job_args(parser, argv)
    model = ModelPackConfig(pack=args.model_pack)
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

        config = CrawlConfig(input="s3://vipwatch-crawl/incoming", gallery="s3://vipwatch-galleries/vips",
                             output="s3://vipwatch-results/demo", model=model)
        result = run_crawl(config)
        summary = {"job_id": result.job_id, "gallery": gallery_uri,
                   **summarise(result.output, result.seconds, result.inputs)}
        preview = duckdb_preview(result.output)
        verdicts = media_verdicts(result.output)
        summary["forgery"] = {k: v for k, v in verdicts.items() if k != "videos"}

        keep = Path(args.keep)
        shutil.rmtree(keep, ignore_errors=True)
        (keep / "results").mkdir(parents=True)
        fs, path = storage.resolve(result.output)
        pafs.copy_files(path, str(keep / "results"), source_filesystem=fs,
                        destination_filesystem=pafs.LocalFileSystem())
        summary["local_copy"] = str(keep / "results")

    print("\nDuckDB: faces per identity")
    for identity, faces, score in preview:
        print(f"  {identity:<20} {faces:>5}  mean match {score}")
    print(f"\nForgery verdicts: {verdicts['image_faces_flagged']} of {verdicts['image_faces']} image faces flagged "
          f"({verdicts['image_faces_judged']} judged); videos, from face tracks:")
    for video in verdicts["videos"]:
        print(f"  {video['image_uri'].rsplit('/', 1)[-1]:<16} {video['verdict']:<18} tracks flagged "
              f"{video['flagged_tracks']}/{video['judged_tracks']} judged ({video['tracks']} tracks, "
              f"{video['frames']} frames)")
    summary["forgery"]["videos"] = {v["image_uri"].rsplit("/", 1)[-1]: v["verdict"] for v in verdicts["videos"]}
    print(f"\nParquet written to {summary['output']} (local S3 server, now stopped); copy kept in "
          f"{summary['local_copy']}\n  e.g. duckdb -c \"SELECT * FROM '{summary['local_copy']}/shard-*/*.parquet' LIMIT 5\"")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
