"""Trains the region-consistency heads (operators/forgery/region_consistency.py) on authentic
faces alone: each face's inner-face and outer-ring embeddings by one pack, two linear maps into a
shared space fitted with a symmetric InfoNCE loss (a face's own two regions are the positive
pair; the other people's regions in the batch are negatives; photos of the same person are
masked, not negatives). No forgery generator is involved, so every manipulation family of the
benchmark stays unseen.

Faces: one per photo (the face nearest the centre, as LFW is labelled), found, aligned and
embedded by a Ray Data actor pool. One person in eight is held out to measure own face vs two
people and to set the authentic median / spread that standardise the signal.

Laundered views (``launder_views``): crawled faces are downscaled and recompressed, which moves a
pack's two region embeddings apart on authentic faces too. Each photo can add copies laundered
at random (continuous JPEG quality and scale ranges of its own, not the benchmark's settings),
each copy a face of the same person; held-out metrics are reported on originals and copies."""
from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timezone
from typing import Optional

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from core import storage
from core.config import DecodeConfig, ModelPackConfig, StorageConfig
from operators.align import align_face
from operators.decode import DecodeError, decode_image
from operators.forgery.face_regions import REGIONS_VERSION
from operators.forgery.identity_signal import region_embeddings
from operators.forgery.region_consistency import HEADS_FILE, RegionConsistency
from operators.packs import load_model_pack

log = logging.getLogger(__name__)
RECIPE = "region-consistency-v1"
RECIPE_LAUNDERED = "region-consistency-v2-laundered"
LAUNDER_QUALITY = (35, 95)
LAUNDER_SCALE = (0.25, 1.0)


def launder_photo(rgb: np.ndarray, seed: int) -> np.ndarray:
    """Downscale by a random factor (back up half the time) and JPEG-recompress at a random
    quality: the web's effect on a face, decoded again as the crawl would."""
    import cv2

    rng = np.random.default_rng(seed)
    height, width = rgb.shape[:2]
    scale = float(rng.uniform(*LAUNDER_SCALE))
    out = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
    quality = int(rng.integers(LAUNDER_QUALITY[0], LAUNDER_QUALITY[1] + 1))
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def with_laundered_views(items: list[dict], views: int, seed: int = 0) -> list[dict]:
    """Each item once as published (``launder`` -1) and ``views`` times laundered (``launder``: the
    copy's seed)."""
    out = [{**item, "launder": -1} for item in items]
    for view in range(views):
        out += [{**item, "launder": seed * 1_000_003 + view * len(items) + k} for k, item in enumerate(items)]
    return out


class RegionEmbedder:
    """Ray Data batch callable: rows (uri, person) -> the same rows with the inner-face and
    outer-ring embeddings of the face nearest the image centre; rows without a face dropped."""

    def __init__(self, model: ModelPackConfig, storage_config: Optional[StorageConfig] = None):
        self.pack = load_model_pack(model, storage_config, threads=1)
        self.storage_config = storage_config

    def _aligned(self, uri: str, launder: int = -1) -> Optional[np.ndarray]:
        try:
            rgb = decode_image(storage.read_bytes(uri, self.storage_config), DecodeConfig())
        except DecodeError:
            return None
        if launder >= 0:
            rgb = launder_photo(rgb, launder)
        found = self.pack.detect(rgb)
        if not found:
            return None
        centre = np.array(rgb.shape[1::-1], np.float32) / 2
        nearest = min(found, key=lambda d: float(np.linalg.norm((d.bbox[:2] + d.bbox[2:]) / 2 - centre)))
        return align_face(rgb, nearest.landmarks, context=False)[0]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        keep, crops = [], []
        launders = batch["launder"] if "launder" in batch else [-1] * len(batch)
        for k, (uri, launder) in enumerate(zip(batch["uri"], launders)):
            crop = self._aligned(uri, int(launder))
            if crop is not None:
                keep.append(k)
                crops.append(crop)
        inner, outer = region_embeddings(self.pack, crops)
        out = batch.iloc[keep].reset_index(drop=True)
        out["inner"] = list(inner.astype(np.float32))
        out["outer"] = list(outer.astype(np.float32))
        out["embedder_id"] = self.pack.embedder_id
        return out


def embed_faces(items: list[dict], model: ModelPackConfig, storage_config: Optional[StorageConfig] = None,
                actors: int = 1, batch_size: int = 32) -> pd.DataFrame:
    import ray.data

    dataset = ray.data.from_items(items).map_batches(
        RegionEmbedder, fn_constructor_kwargs={"model": model, "storage_config": storage_config},
        batch_format="pandas", batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)
    return dataset.to_pandas()


def own_face_auc(cosines: np.ndarray, people: np.ndarray) -> Optional[float]:
    """(faces x faces) cosines of row i's inner with column j's outer: the diagonal (a face with
    itself) against pairs of two different people; None with fewer than two people."""
    other = people[:, None] != people[None, :]
    if not other.any():
        return None
    own = np.diag(cosines)
    return float(roc_auc_score(np.r_[np.ones(len(own)), np.zeros(int(other.sum()))], np.r_[own, cosines[other]]))


def fit_heads(inner: np.ndarray, outer: np.ndarray, people: np.ndarray, steps: int = 1500, batch: int = 512,
              dim: int = 128, temperature: float = 0.07, seed: int = 0) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    inner_head = torch.nn.Linear(inner.shape[1], dim)
    outer_head = torch.nn.Linear(outer.shape[1], dim)
    optimiser = torch.optim.AdamW(list(inner_head.parameters()) + list(outer_head.parameters()), 1e-3,
                                  weight_decay=1e-4)
    codes = np.unique(people, return_inverse=True)[1]
    inner_t, outer_t = torch.from_numpy(inner.astype(np.float32)), torch.from_numpy(outer.astype(np.float32))
    batch = min(batch, len(people))
    for _ in range(steps):
        rows = rng.choice(len(people), batch, replace=False)
        a = torch.nn.functional.normalize(inner_head(inner_t[rows]), dim=1)
        b = torch.nn.functional.normalize(outer_head(outer_t[rows]), dim=1)
        logits = a @ b.T / temperature
        # Two photos of one person are not a negative pair.
        same = torch.from_numpy(codes[rows][:, None] == codes[rows][None, :]) & ~torch.eye(batch, dtype=torch.bool)
        logits = logits.masked_fill(same, -1e9)
        target = torch.arange(batch)
        loss = (torch.nn.functional.cross_entropy(logits, target) +
                torch.nn.functional.cross_entropy(logits.T, target)) / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return {"inner_weight": inner_head.weight.detach().numpy(), "inner_bias": inner_head.bias.detach().numpy(),
            "outer_weight": outer_head.weight.detach().numpy(), "outer_bias": outer_head.bias.detach().numpy()}


def held_out_people(people: np.ndarray, share: float = 0.125, seed: int = 0) -> np.ndarray:
    names = np.unique(people)
    chosen = np.random.default_rng(seed).choice(names, max(1, int(round(len(names) * share))), replace=False)
    return np.isin(people, chosen)


def train(faces: pd.DataFrame, steps: int = 1500, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Heads fitted on the training people; metrics and the authentic cosine's median / spread
    on the held-out people."""
    people = faces["person"].to_numpy()
    inner, outer = np.stack(faces["inner"]), np.stack(faces["outer"])
    validation = held_out_people(people, seed=seed)
    if validation.all() or not validation.any():
        raise ValueError("need faces of at least two people to hold some out")
    heads = fit_heads(inner[~validation], outer[~validation], people[~validation], steps=steps, seed=seed)
    probe = RegionConsistency(heads, {"version": "-", "embedder_id": "-",
                                      "authentic_cosine": {"median": 0.0, "spread": 1.0}})
    a, b = probe.mapped(inner[validation], outer[validation])
    own = (a * b).sum(axis=1)
    # The signal's zero is set on every held-out view, as crawled faces come laundered or not.
    median = float(np.median(own))
    # Interquartile range as a normal spread: robust to the few faces with a poor crop.
    spread = float(np.quantile(own, 0.75) - np.quantile(own, 0.25)) / 1.349
    raw = inner[validation] @ outer[validation].T
    metrics = {"held_out": {"faces": int(validation.sum()), "people": int(len(np.unique(people[validation]))),
                            "own_face_vs_two_people_auc": own_face_auc(a @ b.T, people[validation]),
                            "raw_embeddings_auc": own_face_auc(raw, people[validation])},
               "training": {"faces": int((~validation).sum()), "people": int(len(np.unique(people[~validation])))}}
    if "launder" in faces:
        laundered = faces["launder"].to_numpy()[validation] >= 0
        for name, view in (("held_out_originals", ~laundered), ("held_out_laundered", laundered)):
            if view.sum() > 1:
                metrics[name] = {"faces": int(view.sum()),
                                 "own_face_vs_two_people_auc": own_face_auc(a[view] @ b[view].T, people[validation][view]),
                                 "authentic_cosine_median": float(np.median(own[view]))}
    return heads, {"metrics": metrics, "authentic_cosine": {"median": median, "spread": spread}}


def write_artifact(out_uri: str, heads: dict[str, np.ndarray], manifest: dict,
                   storage_config: Optional[StorageConfig] = None) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **heads)
    storage.write_bytes(storage.join(out_uri, HEADS_FILE), buffer.getvalue(), storage_config)
    storage.write_bytes(storage.join(out_uri, "manifest.json"), json.dumps(manifest, indent=1).encode(),
                        storage_config)


def run(items: list[dict], model: ModelPackConfig, out_uri: str, version: str, data: dict, steps: int = 1500,
        actors: int = 1, storage_config: Optional[StorageConfig] = None, launder_views: int = 0,
        embeddings_uri: Optional[str] = None) -> dict:
    """``items``: {"uri", "person"} per photo; ``data``: what the manifest says of them (sources,
    licences, exclusions). ``embeddings_uri``: a Parquet file of the faces' region embeddings,
    reused when it exists (same items, pack and views) and written when it does not, so a recipe
    change does not embed again."""
    faces = _cached_faces(embeddings_uri, storage_config)
    if faces is not None and not set(faces["uri"]) <= {item["uri"] for item in items}:
        raise ValueError(f"{embeddings_uri} holds faces of photos outside this training set: another --lfw or "
                         f"exclusion; write the embeddings to a new path")
    if faces is not None and cached_views(faces) != launder_views:
        # The manifest states the views trained on; a cache made with another count would belie it.
        raise ValueError(f"{embeddings_uri} holds {cached_views(faces)} laundered views per photo, not "
                         f"{launder_views}: write the embeddings to a new path")
    if faces is None:
        faces = embed_faces(with_laundered_views(items, launder_views), model, storage_config, actors=actors)
        if embeddings_uri:
            storage.write_bytes(embeddings_uri, _parquet_bytes(faces), storage_config)
    if faces.empty:
        raise ValueError("no face found in any training image")
    embedder_id = str(faces["embedder_id"].iloc[0])
    heads, fitted = train(faces, steps=steps)
    manifest = {"version": version, "recipe": RECIPE_LAUNDERED if launder_views else RECIPE, "embedder_id": embedder_id,
                "regions": REGIONS_VERSION,
                "created_at": datetime.now(timezone.utc).isoformat(), "model_pack": model.model_dump(),
                "training": {"steps": steps, "loss": "symmetric InfoNCE, temperature 0.07, batch 512",
                             "heads": "linear, 128-d"},
                "training_data": {**data, "images": len(items), "faces": int(len(faces)),
                                  "laundered_views_per_photo": launder_views,
                                  **({"laundering": {"jpeg_quality": list(LAUNDER_QUALITY), "scale": list(LAUNDER_SCALE),
                                                     "up_again": 0.5}} if launder_views else {}),
                                  "identities": sorted(set(faces["person"]))},
                **fitted}
    write_artifact(out_uri, heads, manifest, storage_config)
    log.info("region consistency %s: %s", version, json.dumps(fitted["metrics"]))
    return manifest


def cached_views(faces: pd.DataFrame) -> int:
    """Laundered views per photo in embedded faces (a photo's face may be missing in some views)."""
    if "launder" not in faces or faces.empty:
        return 0
    return int((faces["launder"] >= 0).groupby(faces["uri"]).sum().max())


def _parquet_bytes(faces: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    faces.assign(inner=[np.asarray(v, np.float32) for v in faces["inner"]],
                 outer=[np.asarray(v, np.float32) for v in faces["outer"]]).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _cached_faces(uri: Optional[str], storage_config: Optional[StorageConfig]) -> Optional[pd.DataFrame]:
    if not uri or not storage.exists(uri, storage_config):
        return None
    faces = pd.read_parquet(io.BytesIO(storage.read_bytes(uri, storage_config)))
    log.info("region embeddings reused from %s (%d faces)", uri, len(faces))
    return faces
