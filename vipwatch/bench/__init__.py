"""What `python -m jobs.benchmark` measures: a crawl-like corpus (`corpus`), the crawl's
processes sampled while it runs (`sampler`), what each actor did (`timeline`), the crawl against the raw model loop
(`crawl_vs_raw`) and FAISS at gallery scale (`gallery_scale`). Figures are printed, never
asserted."""
