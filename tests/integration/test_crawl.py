"""The crawl end to end: local S3 server -> Ray Data -> real models -> gallery match -> Parquet."""
from __future__ import annotations

import shutil

import duckdb
import pytest

from index.gallery import Gallery
from jobs.crawl import parse_config
from core import storage
from core.config import CrawlConfig
from vipwatch.crawl.run import run_crawl
from core.schema import OUTPUT_SCHEMA
from vipwatch.crawl.summary import read_results, summarise

from tests.support.shared_data import ONNX_PACK, PHOTOS

OBAMA = ["obama.jpg", "obama2.jpg", "obama-240p.jpg", "obama-480p.jpg", "obama_small.jpg"]
NOT_ENROLLED = ["biden.jpg", "alex-lacamoire.png", "lin-manuel-miranda.png"]
BROKEN = {"empty.jpg": "empty file", "truncated.jpg": "truncated or corrupt", "notes.jpg": "not a decodable image"}
INPUTS = len(OBAMA) + len(NOT_ENROLLED) + 2 + len(BROKEN)  # + two_people.jpg, multiface.jpg


@pytest.fixture(scope="module")
def crawl(tmp_path_factory, s3_server, ray_cluster, onnx_gallery):
    corpus = tmp_path_factory.mktemp("corpus")
    for name in OBAMA + NOT_ENROLLED + ["two_people.jpg"]:
        shutil.copy(PHOTOS / "face_recognition" / name, corpus / name)
    shutil.copy(PHOTOS / "facenet_pytorch" / "multiface.jpg", corpus / "multiface.jpg")
    (corpus / "empty.jpg").write_bytes(b"")
    jpeg = (PHOTOS / "face_recognition" / "obama.jpg").read_bytes()
    (corpus / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (corpus / "notes.jpg").write_text("a text file named .jpg\n")
    for bucket in ("crawl-in", "crawl-gallery", "crawl-out"):
        s3_server.create_bucket(bucket)
    inputs = storage.upload_dir(str(corpus), "s3://crawl-in/batch-1")
    Gallery.load(onnx_gallery).save("s3://crawl-gallery/vips")
    config = CrawlConfig(input="s3://crawl-in/batch-1", gallery="s3://crawl-gallery/vips",
                         output="s3://crawl-out/results", job_id="test-crawl", model=ONNX_PACK)
    result = run_crawl(config)
    rows = read_results(result.output).to_pylist()
    return {"inputs": inputs, "result": result, "rows": rows,
            "by_name": {name: [r for r in rows if r["image_uri"].endswith("/" + name)] for name in
                        OBAMA + NOT_ENROLLED + list(BROKEN) + ["two_people.jpg", "multiface.jpg"]}}


def test_every_input_has_rows_and_nothing_else(crawl):
    rows = crawl["rows"]
    uris = {r["image_uri"] for r in rows}
    assert len(uris) == crawl["inputs"] == crawl["result"].inputs == INPUTS
    assert all(u.startswith("s3://crawl-in/batch-1/") for u in uris)
    # an image without faces or with an error has exactly one row; faces are numbered 0..n-1
    for name, image_rows in crawl["by_name"].items():
        if image_rows[0]["status"] != "ok":
            assert len(image_rows) == 1, name
        else:
            assert sorted(r["face_index"] for r in image_rows) == list(range(len(image_rows))), name


def test_output_schema_is_the_documented_one(crawl):
    table = read_results(crawl["result"].output)
    for field in OUTPUT_SCHEMA:
        assert table.schema.field(field.name).type == field.type, field.name


def test_vip_photos_match_and_strangers_do_not(crawl):
    by_name = crawl["by_name"]
    for name in OBAMA:
        faces = [r for r in by_name[name] if r["status"] == "ok"]
        assert faces, name
        biggest = max(faces, key=lambda r: (r["bbox"][2] - r["bbox"][0]) * (r["bbox"][3] - r["bbox"][1]))
        assert biggest["identity_id"] == "barack_obama", (name, biggest["candidates"])
        assert biggest["match_score"] >= biggest["match_threshold"]
    for name in NOT_ENROLLED:
        faces = [r for r in by_name[name] if r["status"] == "ok"]
        assert faces, name
        assert all(r["identity_id"] is None for r in faces), (name, [r["candidates"][0] for r in faces])
        assert all(r["match_score"] < r["match_threshold"] for r in faces)
    assert len(by_name["multiface.jpg"]) == 6 and len(by_name["two_people.jpg"]) == 2


def test_bad_files_become_error_rows_with_reasons(crawl):
    for name, reason in BROKEN.items():
        (row,) = crawl["by_name"][name]
        assert row["status"] == "error" and reason in row["error"], row["error"]
        assert row["face_index"] is None and row["identity_id"] is None


def test_rows_carry_provenance_and_geometry(crawl):
    gallery_version = Gallery.load("s3://crawl-gallery/vips").version
    for row in crawl["rows"]:
        assert row["job_id"] == "test-crawl" and row["processed_at"] is not None
        assert row["model_pack"].startswith("onnx:scrfd_500m_kps@")
        assert row["gallery_version"] == gallery_version
        if row["status"] == "ok":
            x1, y1, x2, y2 = row["bbox"]
            assert 0 <= x1 < x2 <= row["image_width"] + 2 and 0 <= y1 < y2 <= row["image_height"] + 2
            assert len(row["landmarks"]) == 10 and len(row["embedding"]) == 128
            assert row["forgery_model"] and row["verdict"] in {"authentic", "suspected_forgery", "unverified"}
            assert len(row["image_sha256"]) == 64


def test_summary_and_duckdb(crawl):
    result = crawl["result"]
    summary = summarise(result.output, result.seconds, result.inputs)
    assert summary["inputs"] == summary["images_in_output"] == INPUTS
    assert summary["error_images"] == 3
    assert summary["identified_per_identity"].get("barack_obama", 0) >= len(OBAMA)
    results = read_results(result.output)  # noqa: F841 (DuckDB scans the Arrow table by name)
    per_status = dict(duckdb.sql("SELECT status, count(DISTINCT image_uri) FROM results GROUP BY 1").fetchall())
    assert per_status["error"] == 3 and sum(per_status.values()) >= INPUTS


def test_crawl_cli_parses_into_the_typed_config():
    config, _ = parse_config(["--input", "s3://a/in", "--gallery", "s3://a/g", "--output", "s3://a/out",
                              "--model-pack", "/models", "--aligned", "--job-id", "j1", "--actor-gpus", "1"])
    assert config.aligned and config.job_id == "j1" and config.model.pack == "/models"
    assert config.resources.analyzer_num_gpus == 1
    assert config.resources.fuse_face_stages
    separate, _ = parse_config(["--input", "in", "--gallery", "g", "--output", "out", "--separate-pools"])
    assert not separate.resources.fuse_face_stages
    assert config.manifest_lines is None
    ranged, _ = parse_config(["--input", "m.txt", "--gallery", "g", "--output", "out", "--manifest-lines", "1000:2000"])
    assert (ranged.manifest_lines.start, ranged.manifest_lines.end) == (1000, 2000)
    with pytest.raises(SystemExit):
        parse_config(["--input", "m.txt", "--gallery", "g", "--output", "out", "--manifest-lines", "2000:1000"])
