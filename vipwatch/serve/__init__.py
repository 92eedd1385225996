"""The Ray Serve endpoint: the crawl's operators (ImageDecoder, then `face_stages`) behind HTTP.

    batching     many requests' Arrow tables -> one operator call -> per-request tables
    deployments  one Serve deployment per Stage; the matcher one also swaps galleries
    security     API keys, request size limit, URI allow-lists
    errors       JSON error bodies with a code, never a stack trace
    ingress      the FastAPI routes
    app          the application builder (`serve run` / `serve deploy`) and a local runner
"""
