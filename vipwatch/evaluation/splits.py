"""Identity-disjoint split of the faces the project may use for impostors: one side builds the
impostor cohort that sets thresholds, the other checks them. A person (or a crowd photo) falls on
one side by a hash of their name, so the split is the same on every machine and every run.

People of ../shared's aligned gallery set (faces_aligned) are checks only: their LFW photos never
enter a cohort, because those identities are enrolled and probed in the evaluations.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from core.config import SHARED_DIR

COHORT = "cohort"
CHECK = "check"
LFW_ROOT = SHARED_DIR / "data" / "lfw" / "lfw-deepfunneled"
LFW_PAIRS = SHARED_DIR / "data" / "lfw" / "pairs.csv"
FACES_ALIGNED_ROOT = SHARED_DIR / "data" / "faces_aligned"
# Photos of crowds and groups: anonymous people, many small faces (the crawl's hard case).
CROWD_PHOTOS = ("data/photos/ultralight", "data/photos/scrfd", "data/photos/facenet_pytorch/multiface.jpg")
# LFW photos per cohort person: more would let a few much-photographed people dominate the impostors.
COHORT_PHOTOS_PER_PERSON = 3


def side_of(name: str) -> str:
    """COHORT or CHECK for a person's or a photo's name (about half each)."""
    return COHORT if hashlib.sha256(name.lower().encode()).digest()[0] % 2 == 0 else CHECK


def reserved_people() -> set[str]:
    """Identities enrolled and probed in evaluations: never in a cohort (lower-case names)."""
    if not FACES_ALIGNED_ROOT.is_dir():
        return set()
    return {p.name.lower() for p in FACES_ALIGNED_ROOT.iterdir() if p.is_dir()}


def lfw_people(side: str, root: Path = LFW_ROOT) -> dict[str, list[str]]:
    """LFW person -> photo paths on one side of the split (reserved people are on CHECK)."""
    reserved = reserved_people()
    people = {}
    for person in sorted(p.name for p in root.iterdir() if p.is_dir()):
        person_side = CHECK if person.lower() in reserved else side_of(person)
        if person_side == side:
            people[person] = sorted(str(f) for f in (root / person).iterdir() if f.suffix.lower() == ".jpg")
    return people


def crowd_photos(side: str) -> list[str]:
    photos = []
    for entry in CROWD_PHOTOS:
        path = SHARED_DIR / entry
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        photos.extend(str(f) for f in files if side_of(f"{entry}/{f.name}") == side)
    return photos


def cohort_lfw_photos() -> list[tuple[str, str]]:
    """(person, path) of the LFW photos that build a cohort: up to COHORT_PHOTOS_PER_PERSON each."""
    return [(person, path) for person, paths in lfw_people(COHORT).items()
            for path in paths[:COHORT_PHOTOS_PER_PERSON]]
