"""jobs.serve's command line reaches the ServeConfig limits the deployed app uses."""
from __future__ import annotations

from jobs.serve import parse_config


def test_limits_and_the_gallery_pointer_come_from_the_command_line():
    config, _ = parse_config(["--gallery", "s3://g/vip", "--request-timeout-s", "12.5", "--max-queued-requests", "7",
                              "--active-gallery-pointer", "s3://state/vip/ACTIVE"])
    assert (config.request_timeout_s, config.max_queued_requests) == (12.5, 7)
    assert config.active_gallery_pointer == "s3://state/vip/ACTIVE"
    defaults, _ = parse_config(["--gallery", "s3://g/vip"])
    assert defaults.active_gallery_pointer is None and defaults.request_timeout_s == 60.0
