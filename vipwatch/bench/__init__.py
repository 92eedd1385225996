"""What `python -m jobs.benchmark` measures: a crawl-like corpus (`corpus`), the crawl's
processes sampled while it runs (`sampler`), what each actor did (`timeline`), the crawl against the raw model loop
(`crawl_vs_raw`) and FAISS at gallery scale by identity decisions (`gallery_scale`). Beside it:
listing a crawl's inputs at scale (`listing`, its own command) and the CPU-side parts of
infra/gpu_check.sh (`gpu_report`). Figures are printed, never asserted."""
