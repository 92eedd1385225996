"""python -m jobs.remove_identity --gallery URI --identity ID --out URI [--purge-previous]

Right to be forgotten: writes a new gallery version without one identity. The version is
rebuilt from the remaining references (Gallery.without_identity), so the FAISS index, the
embeddings, the per-identity statistics, the forgery references and the calibrated threshold
contain nothing derived from that person. The new manifest names the version it derives from,
not the identity.

Crawl rows keep the ``gallery_version`` they were matched against, so older outputs stay
traceable. Older versions still hold the identity's embeddings until purged:
``--purge-previous`` deletes the data files of every version under the source gallery root that
contains the identity and leaves its manifest.json (marked purged) as the record of what that
version was.
"""
from __future__ import annotations

import argparse
import json

from index.removal import remove_identity
from vipwatch.cli import parse_job_args


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", required=True, help="gallery root or version URI to remove the identity from")
    parser.add_argument("--identity", required=True, help="identity_id to remove")
    parser.add_argument("--out", required=True, help="gallery root the new version is written to (may be the same)")
    parser.add_argument("--purge-previous", action="store_true",
                        help="also delete the data files of every older version under the source root that "
                             "holds the identity (manifests are kept for traceability)")
    args = parse_job_args(parser, argv)
    summary = remove_identity(args.gallery, args.identity, args.out, purge_previous=args.purge_previous)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
