"""Where artefact scores stop meaning anything: authentic faces and known fakes scored at
controlled sizes (jobs.forgery_size_sweep).

Each source face is detected once at its native resolution. For every target inter-ocular
distance below its native one, the whole image is downscaled (area interpolation, as a web
thumbnail is) so that the eyes are that many pixels apart, and the crawl's own alignment
(operators.align.align_face, with the landmarks scaled alike) makes the context crop the artefact
detectors see: the same upscaling a small crawled face goes through, without the detector's own
misses at tiny sizes confounding the measure. A second sweep blurs faces at a fixed size to see
what the aligned crop's sharpness (operators.forgery.quality) says.

Sources (../shared): authentic = LFW people (one photo each), the photos of
face_recognition / facenet_pytorch, FF++ original 634 frames, MesoNet 'real' samples; fakes =
FF++ FaceSwap 634_660 frames and MesoNet 'df' samples. Every face has a group (person, photo,
video) for the bootstrap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import rankdata

from core.config import DecodeConfig
from operators.align import align_face
from operators.decode import decode_image, decode_video_frames
from operators.forgery.quality import inter_ocular_px, sharpness

IOD_TARGETS = (8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 80)
BLUR_IOD = 40
BLUR_SIGMAS = (0.0, 0.75, 1.5, 2.5, 4.0)
SHARPNESS_BINS = (0, 25, 50, 100, 200, 400, math.inf)


@dataclass
class SourceFace:
    group: str
    label: int  # 1 = fake
    rgb: np.ndarray
    landmarks: np.ndarray  # (5, 2) native pixels

    @property
    def iod(self) -> float:
        return inter_ocular_px(self.landmarks.reshape(-1).tolist())


def _largest(detections):
    return max(detections, key=lambda d: (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]), default=None)


def image_faces(pack, path: Path, group: str, label: int, all_faces: bool) -> list[SourceFace]:
    rgb = decode_image(path.read_bytes(), DecodeConfig())
    found = pack.detect(rgb)
    chosen = found if all_faces else [d for d in [_largest(found)] if d is not None]
    return [SourceFace(f"{group}#{k}" if all_faces else group, label, rgb, np.asarray(d.landmarks, np.float32))
            for k, d in enumerate(chosen)]


def _video_faces(pack, path: Path, group: str, label: int, step_s: float, max_frames: int) -> list[SourceFace]:
    config = DecodeConfig(video_frame_interval_s=step_s, video_max_frames=max_frames)
    out = []
    for _, _, rgb in decode_video_frames(path.read_bytes(), config):
        face = _largest(pack.detect(rgb))
        if face is not None:
            out.append(SourceFace(group, label, rgb, np.asarray(face.landmarks, np.float32)))
    return out


def collect_faces(pack, data_dir: Path, lfw_people: int, video_step_s: float, video_frames: int) -> list[SourceFace]:
    faces: list[SourceFace] = []
    lfw = data_dir / "lfw" / "lfw-deepfunneled"
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    stride = max(1, len(people) // max(lfw_people, 1))
    for person in people[::stride][:lfw_people]:
        faces += image_faces(pack, sorted(person.iterdir())[0], f"lfw:{person.name}", 0, all_faces=False)
    photos = data_dir / "photos"
    for path in sorted((photos / "face_recognition" / "knn_examples").rglob("*.jp*g")) + \
            sorted((photos / "facenet_pytorch" / "test_images").glob("*/*.jpg")):
        faces += image_faces(pack, path, f"photo:{path.name}", 0, all_faces=True)
    for kind, label in (("real", 0), ("df", 1)):
        for path in sorted((data_dir / "deepfakes" / "mesonet" / kind).iterdir()):
            faces += image_faces(pack, path, f"mesonet:{path.stem}", label, all_faces=False)
    ffpp = data_dir / "deepfakes" / "ffpp"
    faces += _video_faces(pack, ffpp / "original" / "634.mp4", "ffpp:634", 0, video_step_s, video_frames)
    faces += _video_faces(pack, ffpp / "FaceSwap" / "634_660.mp4", "ffpp:634_660", 1, video_step_s, video_frames)
    return faces


def downscaled(face: SourceFace, target_iod: float) -> tuple[np.ndarray, np.ndarray]:
    """(image, its landmarks) with the eyes ``target_iod`` px apart (never upscaled)."""
    scale = target_iod / face.iod
    height, width = face.rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(face.rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else face.rgb
    factor = np.array([small.shape[1] / width, small.shape[0] / height], np.float32)
    return small, face.landmarks * factor


def resized(face: SourceFace, target_iod: float, blur_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(aligned, context) crops of the face with its eyes ``target_iod`` px apart in the image."""
    small, landmarks = downscaled(face, target_iod)
    if blur_sigma > 0:
        small = cv2.GaussianBlur(small, (0, 0), blur_sigma)
    return align_face(small, landmarks)


def score_sweep(faces: list[SourceFace], detectors: list) -> list[dict]:
    """One record per (face, target size) and per (face, blur) with every detector's P(fake)."""
    records, crops = [], []
    for index, face in enumerate(faces):
        for target in IOD_TARGETS:
            if target <= face.iod:
                aligned, context = resized(face, target)
                records.append({"face": index, "group": face.group, "label": face.label, "sweep": "size",
                                "iod": target, "blur_sigma": 0.0, "sharpness": sharpness(aligned)})
                crops.append(context)
        if face.iod >= BLUR_IOD:
            for sigma in BLUR_SIGMAS:
                aligned, context = resized(face, BLUR_IOD, sigma)
                records.append({"face": index, "group": face.group, "label": face.label, "sweep": "blur",
                                "iod": BLUR_IOD, "blur_sigma": sigma, "sharpness": sharpness(aligned)})
                crops.append(context)
    for detector in detectors:
        for record, value in zip(records, detector.score(crops)):
            record[detector.name] = float(value)
    return records


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half); sklearn's per-call checks dominate a bootstrap."""
    ranks = rankdata(scores)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def group_bootstrap_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, rounds: int = 1000,
                        seed: int = 0) -> tuple[float, float, float]:
    """AUC and its 95% interval, resampling whole groups (a video, a person) within each class."""
    if len(set(labels.tolist())) < 2:
        return math.nan, math.nan, math.nan
    value = auc(labels, scores)
    rng = np.random.default_rng(seed)
    by_class = [np.unique(groups[labels == c]) for c in (0, 1)]
    members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    values = []
    for _ in range(rounds):
        rows = np.concatenate([members[g] for c in (0, 1) for g in rng.choice(by_class[c], len(by_class[c]))])
        if len(set(labels[rows].tolist())) == 2:
            values.append(auc(labels[rows], scores[rows]))
    low, high = np.quantile(values, [0.025, 0.975]) if values else (math.nan, math.nan)
    return value, float(low), float(high)


def summarise(records: list[dict], detector_names: list[str], sweep: str, key: str, bins) -> list[dict]:
    """Per bin of ``key``: counts, mean P(fake) and share >= 0.5 per class, AUC with interval."""
    rows = [r for r in records if r["sweep"] == sweep]
    out = []
    edges = list(bins)
    for low, high in (zip(edges[:-1], edges[1:]) if sweep == "blur" else [(b, b) for b in bins]):
        chosen = [r for r in rows if (low <= r[key] < high if sweep == "blur" else r[key] == low)]
        if not chosen:
            continue
        labels = np.array([r["label"] for r in chosen])
        groups = np.array([r["group"] for r in chosen])
        entry = {"bin": f"[{low:g},{high:g})" if sweep == "blur" else f"{low:g}", "real": int((labels == 0).sum()),
                 "fake": int((labels == 1).sum()), "real_groups": int(len(set(groups[labels == 0]))),
                 "fake_groups": int(len(set(groups[labels == 1]))),
                 "median_sharpness": float(np.median([r["sharpness"] for r in chosen]))}
        for name in detector_names:
            scores = np.array([r[name] for r in chosen])
            value, low_ci, high_ci = group_bootstrap_auc(labels, scores, groups)
            entry[name] = {"real_mean": float(scores[labels == 0].mean()) if (labels == 0).any() else math.nan,
                           "real_flagged": float((scores[labels == 0] >= 0.5).mean()) if (labels == 0).any() else math.nan,
                           "fake_mean": float(scores[labels == 1].mean()) if (labels == 1).any() else math.nan,
                           "fake_flagged": float((scores[labels == 1] >= 0.5).mean()) if (labels == 1).any() else math.nan,
                           "auc": value, "auc_95": [low_ci, high_ci]}
        out.append(entry)
    return out


def format_table(title: str, table: list[dict], detector_names: list[str]) -> str:
    lines = [title, f"{'bin':>10s} {'real':>5s} {'fake':>5s} {'sharp':>6s}  " + "  ".join(
        f"{n + ' real>=.5 / fake>=.5 / AUC [95%]':>52s}" for n in detector_names)]
    for e in table:
        cells = []
        for n in detector_names:
            d = e[n]
            cells.append(f"{d['real_flagged']:>6.1%} ({d['real_mean']:.2f}) / {d['fake_flagged']:>6.1%} "
                         f"({d['fake_mean']:.2f}) / {d['auc']:.2f} [{d['auc_95'][0]:.2f},{d['auc_95'][1]:.2f}]")
        lines.append(f"{e['bin']:>10s} {e['real']:5d} {e['fake']:5d} {e['median_sharpness']:6.0f}  " + "  ".join(
            f"{c:>52s}" for c in cells))
    return "\n".join(lines)
