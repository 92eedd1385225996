"""Builds a pack's impostor cohort (index/cohort.py) from the cohort side of the identity split
(vipwatch/evaluation/splits.py): LFW people (up to COHORT_PHOTOS_PER_PERSON photos each, the main
face) and every face of the crowd photos on that side."""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import pandas as pd

from core import storage
from core.config import DecodeConfig
from core.schema import STATUS_OK
from index.cohort import Cohort
from index.gallery import embeddings_of
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from vipwatch.evaluation import splits
from vipwatch.evaluation.face_embeddings import embed_faces

log = logging.getLogger(__name__)
LICENCE = ("derived from LFW (Huang et al. 2007, UMass Amherst; research use only, photos' copyright with their "
           "owners) and crowd photos from Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB (MIT), "
           "hpc203/scrfd-opencv (no licence stated), timesler/facenet-pytorch (MIT): research use only")


def crowd_faces(paths: list[str], analyzer: FaceAnalyzer) -> tuple[np.ndarray, list[str]]:
    """Every detected face of each crowd photo, labelled crowd:<photo>#<face>."""
    decoder = ImageDecoder(DecodeConfig())
    batch = pd.DataFrame({"path": paths, "bytes": [storage.read_bytes(p) for p in paths]})
    rows = analyzer(decoder(batch))
    rows = rows.filter(np.asarray([s == STATUS_OK for s in rows.column("status").to_pylist()]))
    labels = [f"crowd:{uri.rsplit('/', 2)[-2]}/{uri.rsplit('/', 1)[-1]}#{i}" for uri, i in
              zip(rows.column("image_uri").to_pylist(), rows.column("face_index").to_pylist())]
    return embeddings_of(rows), labels


def build_cohort(analyzer: FaceAnalyzer, cache_dir: Optional[str] = None, max_lfw_photos: Optional[int] = None,
                 lfw_cohort_photos: Optional[list[tuple[str, str]]] = None) -> Cohort:
    lfw = lfw_cohort_photos if lfw_cohort_photos is not None else splits.cohort_lfw_photos()
    if max_lfw_photos is not None:
        # When time is short (the dlib pack: ~0.3 s a photo): the first photos in name order, a
        # fixed subset that later runs find in the embedding cache.
        lfw = lfw[:max_lfw_photos]
    faces = embed_faces([path for _, path in lfw], analyzer, cache_dir=cache_dir)
    lfw_vectors = faces.embedding[faces.found]
    lfw_labels = [f"lfw:{person}" for (person, _), ok in zip(lfw, faces.found) if ok]
    crowd_vectors, crowd_labels = crowd_faces(splits.crowd_photos(splits.COHORT), analyzer)
    log.info("cohort: %d LFW faces of %d people (%d photos without a face), %d crowd faces", len(lfw_labels),
             len(set(lfw_labels)), int((~faces.found).sum()), len(crowd_labels))
    sources = {
        "lfw": {"root": str(splits.LFW_ROOT), "photos": len(lfw), "faces": len(lfw_labels),
                "people": len(set(lfw_labels)), "photos_per_person_max": splits.COHORT_PHOTOS_PER_PERSON,
                "split": "sha256(name)[0] even; faces_aligned's people excluded (they are the check set)"},
        "crowds": {"photos": splits.crowd_photos(splits.COHORT), "faces": len(crowd_labels)},
    }
    vectors = np.concatenate([lfw_vectors, crowd_vectors]) if len(crowd_labels) else lfw_vectors
    return Cohort.create(vectors, lfw_labels + crowd_labels, analyzer.pack.embedder_id, analyzer.pack.name,
                         sources=sources, licence=LICENCE,
                         extra={"detection": analyzer.model_config.model_dump(exclude={"device"})})
