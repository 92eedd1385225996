"""The open-set protocols of docs/identification.md, written as ROOT/<identity>/<image> trees of
symbolic links into ../shared, so that jobs.build_gallery and jobs.evaluate_identification run on
them as a user would run them on their own folders.

Every protocol enrols identities and probes with photos that did not enrol, and takes its non-mated
LFW probes from the CHECK side of the identity split only: the impostor cohort that sets the
galleries' thresholds (the COHORT side) is never the one that checks them.
    g5    5 faces_aligned identities x 10 aligned crops; probes: their other crops (mated), the other
          9 identities' crops (non-mated), LFW check-side photos (non-mated)
    g14   all 14 faces_aligned identities x 10 crops; probes: their other crops, LFW check-side photos
    g100  LFW check-side people with >= 4 photos x 2 photos (full photos); probes: their other photos
          (mated, up to 10 each), the other check-side people's photos (non-mated)
"""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from core import storage
from vipwatch.evaluation import splits

REFERENCES_PER_ALIGNED_IDENTITY = 10
G5_IDENTITIES = 5
G100_MIN_PHOTOS = 4
G100_REFERENCES_PER_PERSON = 2
# Mated probes per g100 person: else a few much-photographed people (G. W. Bush: 530) are the test.
G100_PROBES_PER_PERSON = 10


def _link(target: str | Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        os.symlink(target, link)


def _aligned_identities() -> dict[str, list[Path]]:
    root = splits.FACES_ALIGNED_ROOT
    return {p.name: sorted(p.iterdir()) for p in sorted(root.iterdir()) if p.is_dir()}


def write_protocols(out: str | Path, nonmated_people: int = 1000, nonmated_per_person: int = 1,
                    g100_people: int = 110) -> dict:
    """Writes out/<protocol>/{references,probes,photo_probes}/<identity>/<image>; returns counts."""
    out = Path(out)
    aligned = _aligned_identities()
    check_people = splits.lfw_people(splits.CHECK)
    reserved = splits.reserved_people()
    big = [p for p, photos in check_people.items() if len(photos) >= G100_MIN_PHOTOS and p.lower() not in reserved]
    g100_enrolled = big[:g100_people]
    # Non-mated LFW probes: check-side people who are enrolled in no protocol.
    others = [p for p in check_people if p not in set(g100_enrolled) and p.lower() not in reserved][:nonmated_people]
    counts: dict[str, dict[str, int]] = {}

    def add(protocol: str, part: str, identity: str, path: Path | str) -> None:
        path = Path(path)
        _link(path, out / protocol / part / identity / path.name)
        counts.setdefault(protocol, {}).setdefault(part, 0)
        counts[protocol][part] += 1

    for protocol, enrolled in (("g5", list(aligned)[:G5_IDENTITIES]), ("g14", list(aligned))):
        for identity, crops in aligned.items():
            for position, crop in enumerate(crops):
                in_gallery = identity in enrolled and position < REFERENCES_PER_ALIGNED_IDENTITY
                add(protocol, "references" if in_gallery else "probes", identity, crop)
        for person in others:
            for photo in check_people[person][:nonmated_per_person]:
                add(protocol, "photo_probes", person, photo)
    for person in g100_enrolled:
        photos = check_people[person][:G100_REFERENCES_PER_PERSON + G100_PROBES_PER_PERSON]
        for position, photo in enumerate(photos):
            add("g100", "references" if position < G100_REFERENCES_PER_PERSON else "probes", person, photo)
    for person in others:
        for photo in check_people[person][:nonmated_per_person]:
            add("g100", "probes", person, photo)
    return counts


def write_downscaled(source: str | Path, out: str | Path, scale: float) -> int:
    """Copies ROOT/<identity>/<image> to out/<identity>/<image> with each side times ``scale``
    (area interpolation, PNG kept lossless, JPEG at quality 95): the same people as smaller faces,
    to see what face size does to scores. Returns the number of images written."""
    source, out = Path(source), Path(out)
    written = 0
    for path in sorted(source.glob("*/*")):
        if path.suffix.lower() not in storage.IMAGE_EXTENSIONS:
            continue
        with Image.open(path) as image:
            image = image.convert("RGB")
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            target = out / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            image.resize(size, Image.Resampling.BOX).save(target, quality=95)
        written += 1
    return written
