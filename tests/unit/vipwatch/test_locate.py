"""Routing output rows to their shard by URI range (vipwatch/crawl/locate.py)."""
import pytest

from vipwatch.crawl.locate import ShardLocator


def test_locator_places_uris_by_range():
    locator = ShardLocator(["s3://b/a", "s3://b/m"], ["shard-00003", "shard-00007"])
    assert locator.name_of("s3://b/a") == "shard-00003"
    assert locator.name_of("s3://b/lzz") == "shard-00003"
    assert locator.name_of("s3://b/z") == "shard-00007"
    with pytest.raises(ValueError):
        locator.name_of("s3://a/x")
    with pytest.raises(ValueError):
        ShardLocator(["b", "a"], ["x", "y"])
