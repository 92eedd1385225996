"""The load script measures loopback servers only."""
from __future__ import annotations

import pytest

from vipwatch.bench.load import loopback_url


def test_only_loopback_urls_are_accepted():
    for url in ("http://127.0.0.1:8000", "http://127.8.9.10:1/", "http://localhost:8000", "http://[::1]:8000"):
        assert loopback_url(url).startswith("http")
    for url in ("http://10.0.0.5:8000", "https://example.com", "http://0.0.0.0:8000", "ftp://127.0.0.1/",
                "http://127.0.0.1.example.com/", "http://[::ffff:10.0.0.1]:80"):
        with pytest.raises(SystemExit):
            loopback_url(url)
