"""jobs.report on a real crawl's output, rendered in headless Chromium (Debian package)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs.report import main as report_main
from vipwatch.crawl.alerts import ALERTS_DIR

HOSTILE_URI = "s3://x/<img src=x onerror=\"document.title='pwned'\">&'.png"
HOSTILE_REASON = "</li><script>document.title='pwned'</script>"
ALERT_BORDER = np.array([0xC0, 0x39, 0x2B])


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium not installed (infra/install.sh installs it as root: apt-get install -y chromium)")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def report(alert_crawl, onnx_gallery, tmp_path_factory):
    """The report of a copy of the crawl output in which one alert's source URI and a reason
    carry markup, as a crawled object's key or content could."""
    root = tmp_path_factory.mktemp("report")
    job = root / "job"
    shutil.copytree(alert_crawl["job_uri"], job)
    first = sorted((job / ALERTS_DIR).glob("*/*.parquet"))[0]
    table = pq.read_table(first)
    uris = table.column("image_uri").to_pylist()
    reasons = table.column("reasons").to_pylist()
    uris[0], reasons[0] = HOSTILE_URI, [HOSTILE_REASON] + reasons[0]
    table = table.set_column(table.schema.get_field_index("image_uri"), "image_uri", [uris])
    table = table.set_column(table.schema.get_field_index("reasons"), "reasons",
                             [pa.array(reasons, table.schema.field("reasons").type)])
    pq.write_table(table, first)
    out = root / "report.html"
    figures = report_main(["--results", str(job), "--gallery", onnx_gallery, "--out", str(out),
                           "--labels", alert_crawl["labels"]])
    return {"html": out.read_text(), "path": out, "figures": figures, "root": root}


def test_report_content(report, alert_crawl):
    page, figures = report["html"], report["figures"]
    assert figures["alerts"] == alert_crawl["summary"]["alerts"] > 0
    assert figures["images"] == alert_crawl["inputs"] and figures["error_images"] == 1
    # self-contained: every image inline, nothing fetched
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert sources and all(s.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")) for s in sources)
    assert "http://" not in page and "https://" not in page
    # an alert = its crop + up to 4 references; plus two histograms and the ROC (labels given)
    assert len(sources) >= figures["alerts"] * 2 + 3
    assert figures["roc"]["VIP faces"]["fake"] > 0 and figures["roc"]["VIP faces"]["auc"] is not None
    # untrusted strings are escaped, never markup
    assert HOSTILE_REASON not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt;&amp;" in page
    assert "&lt;/li&gt;&lt;script&gt;" in page


def test_report_renders_in_headless_chromium(report):
    url = report["path"].resolve().as_uri()
    dom = chromium("--dump-dom", url, profile=report["root"] / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert total == len(re.findall(r"<img ", report["html"])) and loaded == total
    assert "<title>vipwatch report</title>" in dom.stdout and "pwned" not in dom.stdout.split("</head>")[0]

    shot = report["root"] / "report.png"
    run = chromium(f"--screenshot={shot}", "--window-size=1280,2000", url, profile=report["root"] / "profile-shot")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280) and shot.stat().st_size > 20_000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # photos rendered, not a blank page
    # the alert boxes' red border is on screen
    assert (np.abs(pixels.astype(int) - ALERT_BORDER).sum(axis=2) < 30).sum() > 500
