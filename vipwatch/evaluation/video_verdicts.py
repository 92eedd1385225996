"""Per-video verdicts from frame rows (crawl output or an evaluation frame), aggregated over face
TRACKS, not over independent frames.

A video's frames are scored one by one (the decoder samples one every video_frame_interval_s).
Faces are linked across sampled frames into tracks (``link_tracks``): a face joins the track whose
last face it overlaps (bbox IoU) or resembles as the same person (embedding cosine at least the
gallery's calibrated match threshold, the row's ``match_threshold``), best pair first, within
``MAX_GAP`` sampled frames; rows with neither boxes nor embeddings form one track per video. Per track: the verdict is ``suspected_forgery`` when at least half of
its judged faces (verdict authentic or suspected) were flagged and it has at least
``MIN_TRACK_FACES`` of them (or the video has fewer sampled frames), ``authentic`` when judged
otherwise. Per video: ``suspected_forgery`` when a track is, ``authentic`` when some track was
judged and none is suspected, ``unverified`` when no face was judged. Majority within a track
rather than max: one odd frame (blur, profile) should not flag a person, and a swap shows in
most frames of its track; tracks rather than frames: one person's forged face is not outvoted by
the authentic faces of others in the same frames.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.schema import VERDICT_AUTHENTIC, VERDICT_SUSPECTED, VERDICT_UNVERIFIED, VIP_VERDICTS

SUSPECTED_SHARE = 0.5
MIN_TRACK_FACES = 2
MIN_IOU = 0.3
MAX_GAP = 2
# Without a gallery threshold on the rows (evaluation without --gallery): linking by IoU only.
NO_THRESHOLD = np.inf
JUDGED = VIP_VERDICTS
VIDEO_COLUMNS = ["image_uri", "frames", "faces", "tracks", "judged_tracks", "flagged_tracks", "vip_faces",
                 "flagged_faces", "mean_score", "max_score", "identity_id", "verdict"]


def iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _unit(vector) -> np.ndarray | None:
    if vector is None or len(vector) == 0:
        return None
    v = np.asarray(vector, np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def link_tracks(faces: pd.DataFrame) -> np.ndarray:
    """Track id per face row of ONE video (rows with frame_index, bbox, optional embedding and
    match_threshold)."""
    if "bbox" not in faces and "embedding" not in faces:
        # Rows that cannot be linked (a frame without boxes or embeddings): one track per video,
        # i.e. the frame-majority rule.
        return np.zeros(len(faces), np.int64)
    track_of = np.full(len(faces), -1, np.int64)
    positions = {index: k for k, index in enumerate(faces.index)}
    tracks: list[dict] = []  # last face of each track: frame order, bbox, unit embedding
    frames = sorted(faces["frame_index"].fillna(0).unique())
    order_of = {f: n for n, f in enumerate(frames)}
    for frame in frames:
        rows = faces[faces["frame_index"].fillna(0) == frame]
        pairs = []
        for index, row in rows.iterrows():
            vector = _unit(row.get("embedding"))
            threshold = row.get("match_threshold")
            threshold = NO_THRESHOLD if threshold is None or pd.isna(threshold) else float(threshold)
            for t, track in enumerate(tracks):
                if order_of[frame] - track["order"] > MAX_GAP:
                    continue
                overlap = iou(row["bbox"], track["bbox"]) if row.get("bbox") is not None else 0.0
                cosine = float(vector @ track["vector"]) if vector is not None and track["vector"] is not None else -1.0
                if overlap >= MIN_IOU or cosine >= threshold:
                    pairs.append((overlap + max(cosine, 0.0), index, t))
        taken_rows, taken_tracks = set(), set()
        for _, index, t in sorted(pairs, key=lambda p: -p[0]):
            if index in taken_rows or t in taken_tracks:
                continue
            taken_rows.add(index)
            taken_tracks.add(t)
            track_of[positions[index]] = t
        for index, row in rows.iterrows():
            if index not in taken_rows:
                tracks.append({})
                track_of[positions[index]] = len(tracks) - 1
            t = int(track_of[positions[index]])
            tracks[t] = {"order": order_of[frame], "bbox": row.get("bbox"), "vector": _unit(row.get("embedding"))}
    return track_of


def track_verdicts(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per face track of every video: faces, judged / flagged faces, verdict."""
    videos = frames[(frames["media_type"] == "video") & frames["verdict"].notna()]
    out = []
    for uri, group in videos.groupby("image_uri", sort=True):
        sampled = int(group["frame_index"].nunique())
        group = group.assign(track=link_tracks(group))
        for track, faces in group.groupby("track", sort=True):
            judged = faces[faces["verdict"].isin(JUDGED)]
            flagged = int((judged["verdict"] == VERDICT_SUSPECTED).sum())
            enough = len(judged) >= min(MIN_TRACK_FACES, sampled)
            verdict = VERDICT_UNVERIFIED if judged.empty or not enough else (
                VERDICT_SUSPECTED if flagged >= SUSPECTED_SHARE * len(judged) else VERDICT_AUTHENTIC)
            vip = faces["forgery_identity_id"].dropna() if "forgery_identity_id" in faces else pd.Series(dtype=str)
            out.append({"image_uri": uri, "track": int(track), "faces": int(len(faces)),
                        "first_frame": int(faces["frame_index"].min()), "last_frame": int(faces["frame_index"].max()),
                        "judged_faces": int(len(judged)), "flagged_faces": flagged,
                        "mean_score": float(faces["forgery_score"].mean()),
                        "identity_id": vip.mode().iloc[0] if len(vip) else None, "verdict": verdict})
    return pd.DataFrame(out, columns=["image_uri", "track", "faces", "first_frame", "last_frame", "judged_faces",
                                      "flagged_faces", "mean_score", "identity_id", "verdict"])


def video_verdicts(frames: pd.DataFrame) -> pd.DataFrame:
    tracks = track_verdicts(frames)
    videos = frames[(frames["media_type"] == "video") & frames["verdict"].notna()]
    out = []
    for uri, group in videos.groupby("image_uri", sort=True):
        mine = tracks[tracks["image_uri"] == uri]
        judged = mine[mine["verdict"] != VERDICT_UNVERIFIED]
        flagged = judged[judged["verdict"] == VERDICT_SUSPECTED]
        verdict = VERDICT_UNVERIFIED if judged.empty else (VERDICT_SUSPECTED if len(flagged) else VERDICT_AUTHENTIC)
        vip = group[group["verdict"].isin(JUDGED)]
        identities = group["identity_id"].dropna() if "identity_id" in group else pd.Series(dtype=str)
        out.append({"image_uri": uri, "frames": int(group["frame_index"].nunique()), "faces": int(len(group)),
                    "tracks": int(len(mine)), "judged_tracks": int(len(judged)), "flagged_tracks": int(len(flagged)),
                    "vip_faces": int(len(vip)), "flagged_faces": int((vip["verdict"] == VERDICT_SUSPECTED).sum()),
                    "mean_score": float(group["forgery_score"].mean()), "max_score": float(group["forgery_score"].max()),
                    "identity_id": identities.mode().iloc[0] if len(identities) else None, "verdict": verdict})
    return pd.DataFrame(out, columns=VIDEO_COLUMNS)
