"""vipwatch core: typed config, storage access, output schema and the Ray Data crawl pipeline."""
