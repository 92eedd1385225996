"""The forgery benchmark's labelled photos, built from ../shared and cached on disk.

Sources:
- VIPs: the identities of ``faces_aligned``; the first ``enrolled`` crops of each (sorted by
  name) are the gallery and are never used otherwise; the rest give X's pixels for swaps.
  Authentic photos of VIPs: their LFW folders (9 of the 14 are in LFW) and the Obama photos of
  ``photos/face_recognition``; they are authentic probes and the reenactment family's targets.
- Non-VIPs: LFW people (donor heads for swaps; authentic probes, never the same person as a
  donor), the crowd/group photos of ``photos``, and the FF++ original video 634.

Every row belongs to a *group* (a VIP, an LFW person, a photo's subject, a video): the unit of
the identity-disjoint split (``assign_sides``) and of the bootstrap. A fake's groups are X and
its donor; both sit on X's side. Fakes and the LFW authentic photos go through the same
laundering (``face_edits.launder``), so JPEG quality and rescaling carry no label.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from core.config import SHARED_DIR
from vipwatch.evaluation import face_edits
from vipwatch.evaluation.forgery_families import FAMILIES, FacePhoto, make_fake

log = logging.getLogger(__name__)
CORPUS_VERSION = "forgery-corpus-v1"
SIDES = ("A", "B")
LABEL_FIELDS = ["uri", "label", "family", "identity", "groups", "side", "sources", "face_box", "recipe", "laundering"]
# Photos in ../shared/data/photos whose subject is a VIP (the rest are other people or crowds).
PHOTO_SUBJECTS = {r"obama|two_people": "barack_obama", r"biden": "person:joe_biden",
                  r"kit_harington|johnsnow|john\d": "person:kit_harington", r"rose_leslie|kit_with_rose": "person:rose_leslie",
                  r"alex.lacamoire": "person:alex_lacamoire"}


@dataclass
class Sources:
    vip_crops: dict[str, list[Path]]        # X -> held-out aligned crops (enrolled ones removed)
    vip_photos: dict[str, list[Path]]       # X -> authentic photos with context
    lfw_people: dict[str, list[Path]]       # non-VIP LFW person -> photos
    other_photos: dict[str, list[Path]]     # group -> photos (crowds, other people)
    videos: dict[str, list[Path]]           # group -> authentic videos


def lfw_name(identity_id: str) -> str:
    return "_".join(part.capitalize() for part in identity_id.split("_"))


def photo_group(path: Path) -> str:
    name = str(path).lower()
    for pattern, group in PHOTO_SUBJECTS.items():
        if re.search(pattern, name):
            return group
    return f"photo:{path.parent.name}/{path.stem}"


def find_sources(shared: Path = SHARED_DIR, enrolled: int = 10) -> Sources:
    aligned = shared / "data" / "faces_aligned"
    vips = sorted(p.name for p in aligned.iterdir() if p.is_dir())
    vip_crops = {x: sorted((aligned / x).glob("*.png"))[enrolled:] for x in vips}
    lfw = shared / "data" / "lfw" / "lfw-deepfunneled"
    vip_names = {lfw_name(x): x for x in vips}
    vip_photos: dict[str, list[Path]] = {x: [] for x in vips}
    lfw_people: dict[str, list[Path]] = {}
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        if person.name in vip_names:
            vip_photos[vip_names[person.name]] += photos
        elif photos:
            lfw_people[f"lfw:{person.name}"] = photos
    other: dict[str, list[Path]] = {}
    for path in sorted((shared / "data" / "photos").rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or "tests" in path.parts:
            continue  # photos/.../tests: odd inputs (partial faces, 32-bit PNG), not benchmark faces
        group = photo_group(path)
        (vip_photos[group] if group in vip_photos else other.setdefault(group, [])).append(path)
    videos = {"video:ffpp_634": [shared / "data" / "deepfakes" / "ffpp" / "original" / "634.mp4"]}
    return Sources(vip_crops, vip_photos, lfw_people, other, videos)


def assign_sides(weights: dict[str, float], seed: int) -> dict[str, str]:
    """Each group to side A or B, whole: a seeded shuffle, then the heaviest groups first to the
    lighter side, so both sides get about half the weight (e.g. photos per VIP)."""
    rng = np.random.default_rng(seed)
    groups = sorted(weights)
    order = [groups[i] for i in rng.permutation(len(groups))]
    order.sort(key=lambda g: -weights[g])  # stable: the shuffle breaks ties
    load = {side: 0.0 for side in SIDES}
    count = {side: 0 for side in SIDES}
    out = {}
    for group in order:
        side = min(SIDES, key=lambda s: (load[s], count[s]))
        out[group] = side
        load[side] += weights[group]
        count[side] += 1
    return out


def split_groups(sources: Sources, seed: int) -> dict[str, str]:
    """Sides for every group: VIPs balanced by their authentic photos (reenactment targets and
    VIP probes), every non-VIP group balanced on its own."""
    sides = assign_sides({x: 1.0 + len(p) for x, p in sources.vip_photos.items()}, seed)
    sides.update(assign_sides({g: 1.0 for g in sources.lfw_people}, seed + 1))
    sides.update(assign_sides({g: float(len(p)) for g, p in {**sources.other_photos, **sources.videos}.items()},
                              seed + 2))
    return sides


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"not a decodable image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class FaceLocator:
    """The pack's detector (the crawl's) picks the photo's main face; dlib adds 68 points."""

    def __init__(self, pack):
        self.pack = pack
        self.landmarker = face_edits.Landmarker68()

    def __call__(self, path: Path, min_inter_ocular: float = 12.0) -> Optional[FacePhoto]:
        rgb = read_rgb(path)
        detections = self.pack.detect(rgb)
        if not detections:
            return None
        centre = np.array(rgb.shape[1::-1], np.float32) / 2
        # LFW photos are centred on their person: the largest face near the centre.
        best = max(detections, key=lambda d: (d.bbox[2] - d.bbox[0]) - 0.5 * np.linalg.norm(
            (np.asarray(d.bbox[:2]) + d.bbox[2:4]) / 2 - centre))
        kps = np.asarray(best.landmarks, np.float32).reshape(5, 2)
        photo = FacePhoto(rgb, np.asarray(best.bbox, np.float32), kps, self.landmarker(rgb, best.bbox))
        return photo if photo.inter_ocular >= min_inter_ocular else None


def corpus_key(params: dict) -> str:
    return hashlib.sha256(json.dumps({"version": CORPUS_VERSION, **params}, sort_keys=True).encode()).hexdigest()[:10]


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def build_corpus(cache_dir: str | Path, pack, per_family: int = 120, authentic_lfw: int = 300, seed: int = 0,
                 enrolled: int = 10, families: tuple[str, ...] = FAMILIES, shared: Path = SHARED_DIR,
                 max_other_photos: Optional[int] = None) -> tuple[Path, list[dict]]:
    """Writes (or reuses) <cache>/<key>/labels.csv and the images; returns (dir, label rows)."""
    params = {"per_family": per_family, "authentic_lfw": authentic_lfw, "seed": seed, "enrolled": enrolled,
              "families": list(families), "max_other_photos": max_other_photos}
    root = Path(cache_dir) / f"corpus-{corpus_key(params)}"
    labels_path = root / "labels.csv"
    if labels_path.exists():
        with open(labels_path) as handle:
            return root, list(csv.DictReader(handle))
    sources = find_sources(shared, enrolled)
    sides = split_groups(sources, seed)
    rng = np.random.default_rng(seed)
    locate = FaceLocator(pack)
    rows: list[dict] = []

    def add(uri, label, family, identity, groups, sources_used, face_box, recipe, laundering):
        rows.append({"uri": uri, "label": label, "family": family, "identity": identity,
                     "groups": "|".join(groups), "side": sides[groups[0]], "sources": "|".join(map(str, sources_used)),
                     "face_box": json.dumps(face_box), "recipe": json.dumps(recipe, default=str),
                     "laundering": json.dumps(laundering)})

    # LFW people: a shuffled queue per side; donors and authentic probes are drawn from it, so a
    # person is used once (never both a donor and an authentic probe).
    queue = {side: [g for g in rng.permutation(sorted(sources.lfw_people)) if sides[g] == side] for side in SIDES}

    def next_person(side):
        while queue[side]:
            group = queue[side].pop()
            path = sources.lfw_people[group][int(rng.integers(len(sources.lfw_people[group])))]
            photo = locate(path)
            if photo is not None:
                return group, path, photo
        raise ValueError(f"side {side}: LFW people exhausted; lower --per-family / --authentic-lfw")

    def laundered(rgb, box, name):
        data, meta = face_edits.launder(rgb, rng)
        factor = meta["geometry_factor"]
        return _write(root / name, data), [round(float(v) * factor, 1) for v in box], meta

    vips = sorted(sources.vip_crops)
    with_photos = [x for x in vips if sources.vip_photos[x]]
    vip_photo_cache: dict[Path, Optional[FacePhoto]] = {}
    for family in families:
        made = 0
        attempts = 0
        while made < per_family and attempts < 4 * per_family:
            attempts += 1
            if family == "reenact":
                x = with_photos[made % len(with_photos)]
                path = sources.vip_photos[x][int(rng.integers(len(sources.vip_photos[x])))]
                if path not in vip_photo_cache:
                    vip_photo_cache[path] = locate(path)
                photo = vip_photo_cache[path]
                if photo is None:
                    continue
                edit = make_fake(family, rng, photo=photo)
                groups, used = [x], [path]
            else:
                x = vips[made % len(vips)]
                crop_path = sources.vip_crops[x][int(rng.integers(len(sources.vip_crops[x])))]
                donor_group, donor_path, photo = next_person(sides[x])
                edit = make_fake(family, rng, crop=read_rgb(crop_path), photo=photo)
                groups, used = [x, donor_group], [crop_path, donor_path]
            uri, box, meta = laundered(edit.rgb, photo.bbox, f"fake/{family}/{made:04d}_{x}.jpg")
            add(uri, 1, family, x, groups, used, box, edit.recipe, meta)
            made += 1
        log.info("family %s: %d fakes", family, made)

    for side in SIDES:
        for number in range(authentic_lfw // 2):
            group, path, photo = next_person(side)
            uri, box, meta = laundered(photo.rgb, photo.bbox, f"real/lfw/{side}{number:04d}_{path.stem}.jpg")
            add(uri, 0, "authentic", group, [group], [path], box, {}, meta)
    for x, paths in sources.vip_photos.items():
        for k, path in enumerate(paths):
            # VIP photos stay as published (some are the reenactment targets, paired as in FF++).
            add(str(path), 0, "authentic", x, [x], [path], None, {}, {})
    others = sorted(sources.other_photos.items())
    for group, paths in others[:max_other_photos]:
        for path in paths:
            add(str(path), 0, "authentic", group, [group], [path], None, {}, {})
    for group, paths in sources.videos.items():
        for path in paths:
            add(str(path), 0, "authentic", group, [group], [path], None, {}, {})
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "params.json", "w") as handle:
        json.dump({**params, "corpus_version": CORPUS_VERSION, "sides": sides}, handle, indent=1)
    with open(labels_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LABEL_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return root, rows
