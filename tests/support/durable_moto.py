"""A moto_server whose data survives a restart, for the "S3 restarted mid-crawl" test.

moto keeps its state in memory; real S3 keeps objects across an outage. This launcher records
every request (moto's own recorder) to a file and, when started again on the same file, replays
the recording into the fresh backend *before* it opens its port, so no client ever sees an empty
server: clients see connection refused while it is down, then the same objects.

    python tests/support/durable_moto.py PORT RECORDING_FILE
"""
from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path


def main() -> None:
    port, recording = int(sys.argv[1]), Path(sys.argv[2])
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)
    os.environ["MOTO_PORT"] = str(port)
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.server import MotoRequestHandler
    from werkzeug.serving import run_simple
    from werkzeug.test import Client

    app = DomainDispatcherApplication(create_backend_app)
    if recording.exists():
        recorder.stop_recording()
        replay(Client(app), recording)
    recorder.start_recording()
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


def replay(client, recording: Path) -> None:
    """Re-issue the recorded requests in order. Multipart uploads get new upload ids from the
    fresh backend, so later requests of the same upload are rewritten to the new id."""
    upload_ids: dict[str, str] = {}  # path -> upload id of its latest replayed CreateMultipartUpload
    for line in recording.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the last line of a server killed mid-write
        body = entry.get("body") or b""
        if entry.get("body_encoded"):
            body = base64.b64decode(body)
        headers = {k: v for k, v in entry["headers"].items() if k.lower() != "transfer-encoding"}
        url = entry["url"].split("://", 1)[-1]
        target = "/" + url.split("/", 1)[1] if "/" in url else "/"
        path, _, query = target.partition("?")
        if "uploadId=" in query and path in upload_ids:
            query = re.sub(r"uploadId=[^&]*", f"uploadId={upload_ids[path]}", query)
        try:
            response = client.open(f"{path}?{query}" if query else path, method=entry["method"], headers=headers,
                                   data=body)
        except Exception as exc:  # one odd request must not lose the rest of the state
            print(f"replay of {entry['method']} {path} failed: {exc!r}", file=sys.stderr)
            continue
        if entry["method"] == "POST" and query.startswith("uploads"):
            found = re.search(rb"<UploadId>([^<]+)</UploadId>", response.get_data())
            if found:
                upload_ids[path] = found.group(1).decode()


if __name__ == "__main__":
    main()
