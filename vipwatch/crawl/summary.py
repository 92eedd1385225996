"""Reading a crawl's Parquet output back: the end-of-job summary."""
from __future__ import annotations

from collections import Counter

import pyarrow.dataset as pads

from core import storage
from core.schema import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, VERDICT_SUSPECTED, VIP_VERDICTS
from vipwatch.crawl.alerts import read_alerts
from vipwatch.evaluation.video_verdicts import video_verdicts

SUMMARY_COLUMNS = ["image_uri", "status", "identity_id", "verdict", "error"]


def read_results(output_uri: str, columns: list[str] | None = None, storage_config=None):
    filesystem, path = storage.resolve(output_uri, storage_config)
    return pads.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=columns)


def count_rows(rows: list[dict]) -> dict:
    """The counts every account of a crawl gives (the job's summary, the report), from result
    rows with at least image_uri, status, error, identity_id and verdict."""
    images = {r["image_uri"] for r in rows}
    faces = [r for r in rows if r["status"] == STATUS_OK]
    identified = Counter(r["identity_id"] for r in faces if r["identity_id"])
    errors = Counter((r["error"] or "").split(":")[0] for r in rows if r["status"] == STATUS_ERROR)
    return {
        "images_in_output": len(images),
        "images_with_faces": len({r["image_uri"] for r in faces}),
        "no_face_images": sum(r["status"] == STATUS_NO_FACE for r in rows),
        "error_images": len({r["image_uri"] for r in rows if r["status"] == STATUS_ERROR}),
        "faces": len(faces), "identified_faces": sum(identified.values()),
        "identified_per_identity": dict(sorted(identified.items())),
        "suspected_forgeries": sum(r["verdict"] == VERDICT_SUSPECTED for r in faces),
        "errors_by_reason": dict(errors),
    }


def summarise(output_uri: str, seconds: float, inputs: int, storage_config=None) -> dict:
    rows = read_results(output_uri, SUMMARY_COLUMNS, storage_config).to_pylist()
    return {
        "inputs": inputs, **count_rows(rows), "seconds": round(seconds, 2),
        "images_per_s": round(inputs / seconds, 2) if seconds else None,
        "output": output_uri,
        "alerts": _alert_count(output_uri, storage_config),
    }


def media_verdicts(output_uri: str, storage_config=None) -> dict:
    """Forgery verdicts by medium: image faces judged / flagged, and each video's verdict from
    its face tracks (vipwatch/evaluation/video_verdicts.py)."""
    columns = ["image_uri", "status", "media_type", "frame_index", "bbox", "embedding", "match_threshold",
               "identity_id", "forgery_identity_id", "forgery_score", "verdict"]
    faces = read_results(output_uri, columns, storage_config).to_pandas()
    faces = faces[faces["status"] == STATUS_OK]
    images = faces[faces["media_type"] != "video"]
    videos = video_verdicts(faces)
    return {"image_faces": int(len(images)),
            "image_faces_judged": int(images["verdict"].isin(VIP_VERDICTS).sum()),
            "image_faces_flagged": int((images["verdict"] == VERDICT_SUSPECTED).sum()),
            "videos": videos.drop(columns=["mean_score", "max_score"]).to_dict("records")}


def _alert_count(output_uri: str, storage_config=None) -> int:
    return read_alerts(output_uri, storage_config).num_rows


def summary_line(summary: dict) -> str:
    """The one human-readable line a crawl ends with (the JSON summary carries the rest)."""
    rate = summary.get("images_per_s")
    return (f"crawl {summary.get('job_id', '')}: {summary['images_in_output']} images, {summary['faces']} faces, "
            f"{summary['identified_faces']} VIP matches, {summary['suspected_forgeries']} suspected forgeries "
            f"({summary.get('alerts', 0)} alerts), {summary['error_images']} errors, "
            f"{'-' if rate is None else f'{rate:.2f}'} images/s in {summary['seconds']:.1f} s")
