"""Batch-in / batch-out operators shared by the Ray Data crawl and the Serve app."""
