"""Per-video verdicts from frame rows (crawl output or an evaluation frame).

A video's frames are scored one by one (the decoder samples one every video_frame_interval_s).
Per video: ``mean_score`` and ``max_score`` of the frame forgery scores; the verdict is
``suspected_forgery`` when at least half of the frames that involved a VIP were flagged,
``authentic`` when VIP frames exist and fewer were flagged, ``unverified`` when no frame
involved a VIP. Majority rather than max: one odd frame (blur, profile) should not flag a video,
and a swap shows in most frames. Same as the DuckDB query in docs/forgery.md ("Evaluation").
"""
from __future__ import annotations

import pandas as pd

SUSPECTED_SHARE = 0.5


def video_verdicts(frames: pd.DataFrame) -> pd.DataFrame:
    videos = frames[(frames["media_type"] == "video") & frames["verdict"].notna()]
    out = []
    for uri, group in videos.groupby("image_uri", sort=True):
        vip = group[group["verdict"] != "unverified"]
        flagged = int((vip["verdict"] == "suspected_forgery").sum())
        verdict = "unverified" if vip.empty else (
            "suspected_forgery" if flagged >= SUSPECTED_SHARE * len(vip) else "authentic")
        identities = vip["identity_id"].dropna() if "identity_id" in vip else pd.Series(dtype=str)
        out.append({"image_uri": uri, "frames": int(group["frame_index"].nunique()), "faces": int(len(group)),
                    "vip_faces": int(len(vip)), "flagged_faces": flagged,
                    "mean_score": float(group["forgery_score"].mean()), "max_score": float(group["forgery_score"].max()),
                    "identity_id": identities.mode().iloc[0] if len(identities) else None, "verdict": verdict})
    return pd.DataFrame(out, columns=["image_uri", "frames", "faces", "vip_faces", "flagged_faces", "mean_score",
                                      "max_score", "identity_id", "verdict"])
