"""A crawl's alerts as one static, self-contained HTML page for analysts (jobs.report): per alert
(a VIP face flagged as a suspected forgery) the face crop beside the VIP's reference crops,
scores, reasons and source; counts per identity; score histograms; ROC when labels (CSV
``uri,label``, 1 = fake) are given. Images are inline ``data:`` URIs and a
Content-Security-Policy forbids any fetch, so the file can be mailed or archived as is. Every
string from the data is HTML-escaped (URIs and reasons come from crawled content)."""
from __future__ import annotations

import base64
import csv
import hashlib
import html
from collections import Counter
from datetime import datetime, timezone
from typing import Optional

import pyarrow as pa
import pyarrow.fs as pafs

from core import storage
from core.schema import STATUS_OK, VERDICT_SUSPECTED
from index.gallery import Gallery
from vipwatch.report.charts import histograms, roc
from vipwatch.crawl.alerts import ALERTS_DIR, ALERT_SCHEMA, read_alerts
from vipwatch.crawl.summary import count_rows, media_verdicts, read_results

REFERENCES_PER_VIP = 4
RESULT_COLUMNS = ["image_uri", "status", "error", "identity_id", "forgery_identity_id", "match_score",
                  "forgery_score", "verdict"]

# Marks the page once every <img> has decoded (a headless browser's --dump-dom shows it).
IMAGE_CHECK = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-total', String(images.length));
  document.body.setAttribute('data-images-loaded', String(loaded));
});
"""
STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 20px; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
.alert { border: 2px solid #c0392b; border-radius: 6px; padding: 10px; margin: 12px 0; }
.faces img { width: 112px; height: 112px; margin-right: 6px; }
.probe { outline: 3px solid #c0392b; }
code { word-break: break-all; }
.charts img { max-width: 600px; margin-right: 12px; }
"""


# Only this script may run (by hash): were escaping ever to miss, injected markup could not execute.
SCRIPT_HASH = base64.b64encode(hashlib.sha256(IMAGE_CHECK.encode("utf-8")).digest()).decode("ascii")
CSP = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_HASH}'"


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def read_job_alerts(results_uri: str, storage_config=None):
    """Alerts of a job directory, or of every job below an output root."""
    direct = read_alerts(results_uri, storage_config)
    if direct.num_rows or storage.exists(storage.join(results_uri, ALERTS_DIR), storage_config):
        return direct
    filesystem, path = storage.resolve(results_uri, storage_config)
    children = [info for info in filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
                if info.type == pafs.FileType.Directory and not info.base_name.startswith(("_", "."))]
    tables = [read_alerts(storage.to_uri(filesystem, info.path), storage_config) for info in children]
    return pa.concat_tables([t for t in tables if t.num_rows] or [ALERT_SCHEMA.empty_table()])


def read_labels(path: Optional[str]) -> dict[str, int]:
    if not path:
        return {}
    with open(path, newline="") as handle:
        return {storage.normalise(row["uri"]): int(row["label"]) for row in csv.DictReader(handle)}


def reference_crops(gallery, identity: str, limit: int = REFERENCES_PER_VIP) -> list[bytes]:
    table = gallery.references
    crops = [jpeg for owner, jpeg in zip(table.column("identity_id").to_pylist(),
                                         table.column("aligned_face_jpeg").to_pylist()) if owner == identity and jpeg]
    return crops[:limit]


def table_html(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def alert_html(alert: dict, references: list[bytes], display_name: str) -> str:
    crop = (f'<img class="probe" alt="flagged face" src="{data_uri(alert["face_jpeg"], "image/jpeg")}">'
            if alert["face_jpeg"] else "<span>(no crop)</span>")
    refs = "".join(f'<img alt="reference of {esc(alert["vip_identity_id"])}" src="{data_uri(r, "image/jpeg")}">'
                   for r in references) or "<span>(no reference crops in the gallery)</span>"
    frame = "" if alert["frame_index"] is None else f" frame {esc(alert['frame_index'])} ({esc(alert['timestamp_s'])} s)"
    signals = ", ".join(f"{esc(s['name'])}={s['value']:.3f}" for s in alert["forgery_signals"] or [])
    reasons = "".join(f"<li>{esc(r)}</li>" for r in alert["reasons"] or [])
    match = "-" if alert["match_score"] is None else f"{alert['match_score']:.3f}"
    return f"""<div class="alert">
<h3>{esc(display_name)} <small>({esc(alert["vip_identity_id"])})</small>: forgery score {alert["forgery_score"]:.3f}</h3>
<div class="faces">{crop} <span>vs references:</span> {refs}</div>
<p>source: <code>{esc(alert["image_uri"])}</code>{frame}, face {esc(alert["face_index"])};
matched identity: {esc(alert["identity_id"] or "none")} (match score {match},
threshold {"-" if alert["match_threshold"] is None else f"{alert['match_threshold']:.3f}"})</p>
<ul>{reasons}</ul>
<p><small>signals: {signals}<br>model: {esc(alert["forgery_model"])}; gallery {esc(alert["gallery_version"])};
job {esc(alert["job_id"])}</small></p>
</div>"""


def render(results_uri: str, gallery_uri: str, labels_path: Optional[str] = None, max_alerts: int = 200,
           storage_config=None) -> tuple[str, dict]:
    gallery = Gallery.load(gallery_uri, storage_config)
    names = dict(zip(gallery.identities.column("identity_id").to_pylist(),
                     gallery.identities.column("display_name").to_pylist()))
    rows = read_results(results_uri, RESULT_COLUMNS, storage_config).to_pylist()
    counts = count_rows(rows)
    faces = [r for r in rows if r["status"] == STATUS_OK]
    alerts = sorted(read_job_alerts(results_uri, storage_config).to_pylist(),
                    key=lambda a: (-(a["forgery_score"] or 0), a["image_uri"], a["face_index"] or 0))
    labels = read_labels(labels_path)

    identified = counts["identified_per_identity"]
    checked = Counter(f["forgery_identity_id"] for f in faces if f["forgery_identity_id"])
    alerted = Counter(a["vip_identity_id"] for a in alerts)
    errors = counts["errors_by_reason"]
    per_identity = [[names.get(i, i), i, identified.get(i, 0), checked.get(i, 0), alerted.get(i, 0)]
                    for i in sorted(set(identified) | set(checked) | set(alerted),
                                    key=lambda i: (-alerted.get(i, 0), -identified.get(i, 0), i))]
    figures = {"images": counts["images_in_output"], "faces": counts["faces"],
               "vip_matches": counts["identified_faces"], "alerts": len(alerts),
               "error_images": counts["error_images"]}
    charts = histograms(faces)
    roc_png, roc_metrics = roc(faces, labels) if labels else (None, {})

    parts = [f"<h1>vipwatch report</h1><p>results <code>{esc(results_uri)}</code>; gallery "
             f"<code>{esc(gallery_uri)}</code> ({esc(gallery.version)}); generated "
             f"{esc(datetime.now(timezone.utc).isoformat(timespec='seconds'))}</p>",
             "<h2>Summary</h2>" + table_html(list(figures), [list(figures.values())])]
    parts.append(f"<h2 id=\"alerts\">Alerts ({len(alerts)})</h2>")
    if not alerts:
        parts.append("<p>No VIP face was flagged as a suspected forgery.</p>")
    for alert in alerts[:max_alerts]:
        vip = alert["vip_identity_id"]
        parts.append(alert_html(alert, reference_crops(gallery, vip), names.get(vip, vip)))
    if len(alerts) > max_alerts:
        parts.append(f"<p>{len(alerts) - max_alerts} more alerts not shown (--max-alerts).</p>")
    videos = media_verdicts(results_uri, storage_config)["videos"]
    if videos:
        # One verdict per video, from its face tracks (vipwatch/evaluation/video_verdicts.py).
        parts.append(f"<h2>Videos ({len(videos)})</h2>" + table_html(
            ["video", "verdict", "tracks flagged / judged", "tracks", "sampled frames", "faces"],
            [[v["image_uri"], v["verdict"], f"{v['flagged_tracks']} / {v['judged_tracks']}", v["tracks"], v["frames"],
              v["faces"]] for v in videos]))
    figures["suspected_videos"] = sum(v["verdict"] == VERDICT_SUSPECTED for v in videos)
    parts.append("<h2>Faces per identity</h2>" + table_html(
        ["name", "identity_id", "matched faces", "faces checked for forgery", "alerts"], per_identity))
    if errors:
        parts.append("<h2>Errors</h2>" + table_html(["reason", "images"], sorted(errors.items())))
    parts.append('<h2>Score distributions</h2><div class="charts">' + "".join(
        f'<img alt="{esc(title)}" src="{data_uri(image, "image/png")}">' for title, image in charts) + "</div>")
    if labels:
        parts.append("<h2>ROC against labels</h2>")
        if roc_png:
            parts.append(f'<div class="charts"><img alt="ROC" src="{data_uri(roc_png, "image/png")}"></div>')
        parts.append(table_html(["faces", "real", "fake", "AUC", "EER", "TPR at 1% FPR"],
                                [[name, m["real"], m["fake"], *(("-" if m[k] is None else f"{m[k]:.3f}")
                                                                for k in ("auc", "eer", "tpr_at_fpr_1pct"))]
                                 for name, m in roc_metrics.items()]))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>vipwatch report</title><style>{STYLE}</style><script>{IMAGE_CHECK}</script></head>
<body>{''.join(parts)}</body></html>
"""
    return page, {**figures, "roc": roc_metrics}
