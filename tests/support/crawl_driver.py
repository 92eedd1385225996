"""Runs one crawl as its own driver process (so a test can kill -9 it mid-run):
    python tests/support/crawl_driver.py '<CrawlConfig JSON>'
Joins the cluster in RAY_ADDRESS, as a `ray job submit` driver would. Prints the result as JSON."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.config import CrawlConfig  # noqa: E402
from vipwatch.crawl.run import run_crawl  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    result = run_crawl(CrawlConfig.model_validate_json(sys.argv[1]))
    print(json.dumps({"inputs": result.inputs, "processed_inputs": result.processed_inputs,
                      "shards": result.shards, "shards_processed": result.shards_processed,
                      "output": result.output, "seconds": round(result.seconds, 2)}))
