"""Train the SBI detector with Ray Train (TorchTrainer) and write a versioned artefact:
``model.pt`` (TorchScript, uint8 RGB faces -> P(fake)) + ``manifest.json``.

Real faces are found once into a Parquet cache (native-resolution regions + 68 landmarks,
vipwatch/training/sbi_faces.py). The training Dataset reads it, samples a share of the faces
each epoch and makes the (real, self-blend) pairs in Ray Data tasks, so pair making runs beside
the training workers (CPU nodes on a GPU cluster) and every epoch sees fresh blends.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from core import storage
from core.config import ModelPackConfig, StorageConfig
from operators.forgery.face_crop import SBI_WINDOW
from operators.forgery.sbi import BLEND_RATIOS, HULL_KINDS
from operators.forgery.sbi_model import (MANIFEST_FILE, MODEL_FILE, export_torchscript, model_inputs, network_state,
                                         normalise, read_artifact)
from vipwatch.training.sbi_data import Augment, PairMaker, pairs_from_rows, split_by_identity
from vipwatch.training.sbi_eval import load_faces
from vipwatch.training.sbi_faces import READ_CPUS, RealSource, build_face_cache, read_faces
from vipwatch.training.sbi_network import MOBILEFACENET, build_network
from vipwatch.ray_cluster import init_ray

log = logging.getLogger(__name__)

# Terms of what a trained artefact saw, by source name (a source not listed is reported as such).
DATA_TERMS = {
    "lfw": "LFW (UMass Amherst): research benchmark, no licence; photos copyright their owners. Research use only",
    "faces_aligned": "Glint360K sample (ElisonSherton/Face-Applications): non-commercial research only",
    "photos": "public-figure photos from ageitgey/face_recognition (MIT code), timesler/facenet-pytorch (MIT), "
              "Linzaer Ultra-Light (MIT), hpc203/scrfd-opencv (no licence stated)",
    "ffpp_original": "FaceForensics++: research, non-commercial",
}
BACKBONE_TERMS = {
    "mfn": "MobileFaceNet weights from foamliu/MobileFaceNet (Apache-2.0), trained on MS1M (research terms)",
}
LANDMARK_TERMS = "dlib 68-point shape predictor (face-recognition-models): iBUG 300-W, non-commercial"


@dataclass
class TrainOptions:
    real: list[RealSource]
    out: str
    cache: str
    model: ModelPackConfig = field(default_factory=ModelPackConfig)
    epochs: int = 3
    epoch_fraction: float = 1.0
    image_size: int = 128
    backbone: str = "mfn"
    backbone_weights: Optional[str] = None
    batch_size: int = 16
    lr: float = 2e-4
    head_lr_factor: float = 10.0
    val_source: Optional[str] = None
    val_fraction: float = 0.05
    max_val_faces: int = 400
    max_per_identity: Optional[int] = None
    max_steps: Optional[int] = None
    max_train_minutes: Optional[float] = None
    val_real: Optional[str] = None
    val_fake: Optional[str] = None
    val_pad: float = 0.5
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 0.5
    data_cpus: float = 0.5
    seed: int = 0
    version: Optional[str] = None
    # An SBI artefact to continue training from (its weights; the schedule restarts).
    init_from: Optional[str] = None
    # Where Ray Train keeps each epoch's checkpoint (model.pt); kept after the run when given.
    checkpoint_dir: Optional[str] = None
    storage: StorageConfig = field(default_factory=StorageConfig)


def score_inputs(scorer: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray, batch: int = 128) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch):
            out.append(scorer(torch.from_numpy(np.array(inputs[start:start + batch]))).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def separation_metrics(real_scores: np.ndarray, fake_scores: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    labels = np.concatenate([np.zeros(len(real_scores)), np.ones(len(fake_scores))])
    scores = np.concatenate([real_scores, fake_scores])
    return {"auc": float(roc_auc_score(labels, scores)), "accuracy_at_0.5": float(((scores > 0.5) == labels).mean()),
            "real": int(len(real_scores)), "fake": int(len(fake_scores)),
            "mean_score_real": float(real_scores.mean()), "mean_score_fake": float(fake_scores.mean())}


def _bare(network: torch.nn.Module) -> torch.nn.Module:
    return network.module if hasattr(network, "module") else network  # DDP wraps when world size > 1


def _param_groups(network: torch.nn.Module, lr: float, head_factor: float) -> list[dict]:
    head = [p for n, p in network.named_parameters() if "classifier" in n]
    body = [p for n, p in network.named_parameters() if "classifier" not in n]
    return [{"params": body, "lr": lr}, {"params": head, "lr": lr * head_factor}]


def _out_of_budget(config: dict, step: int, started: float) -> bool:
    return bool((config["max_steps"] and step >= config["max_steps"]) or (
        config["max_train_minutes"] and time.monotonic() - started > 60 * config["max_train_minutes"]))


def train_loop_per_worker(config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch as ray_torch

    rank = ray.train.get_context().get_world_rank()
    torch.manual_seed(config["seed"] + rank)
    network = build_network(config["backbone"], config["backbone_weights"])
    if config["init_state"] is not None:
        network.load_state_dict(ray.get(config["init_state"]), strict=True)
    network = ray_torch.prepare_model(network)
    device = ray_torch.get_device()
    optimizer = torch.optim.AdamW(_param_groups(network, config["lr"], config["head_lr_factor"]), weight_decay=1e-4)
    total_steps = max(1, config["total_steps"])
    warmup = max(1, total_steps // 20)
    budget_s = 60 * config["max_train_minutes"] if config["max_train_minutes"] else None
    started = time.monotonic()

    def progress(step: int) -> float:
        # With a time budget the cosine follows whichever ends first, steps or time, so a run cut
        # by the clock still ends annealed.
        done = step / total_steps
        return min(1.0, max(done, (time.monotonic() - started) / budget_s) if budget_s else done)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * progress(step))))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    val_real, val_fake = ray.get(config["validation"])
    shard = ray.train.get_dataset_shard("train")
    step = 0
    for epoch in range(config["epochs"]):
        network.train()
        total, seen, epoch_start = 0.0, 0, time.monotonic()
        for batch in shard.iter_batches(batch_size=2 * config["batch_size"], batch_format="numpy", prefetch_batches=2):
            logits = network(normalise(torch.from_numpy(batch["image"])).to(device))
            loss = loss_fn(logits, torch.from_numpy(batch["label"]).float().to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            total, seen = total + loss.item() * len(batch["label"]), seen + len(batch["label"])
            if rank == 0 and step % config["log_every"] == 0:
                elapsed = time.monotonic() - started
                log.warning("step %d: loss %.4f, %.2f steps/s, %.1f images/s, %.0f s", step, total / seen,
                            step / elapsed, seen / (time.monotonic() - epoch_start), elapsed)
            if _out_of_budget(config, step, started):
                break
        network.eval()
        scorer = lambda x: torch.sigmoid(_bare(network)(normalise(x).to(device)))  # noqa: E731
        metrics = {"epoch": epoch + 1, "train_loss": total / max(seen, 1), "train_images": seen, "steps": step,
                   "train_seconds": time.monotonic() - started, "epoch_seconds": time.monotonic() - epoch_start,
                   **{f"val_{k}": v for k, v in separation_metrics(score_inputs(scorer, val_real),
                                                                   score_inputs(scorer, val_fake)).items()}}
        last = epoch == config["epochs"] - 1 or _out_of_budget(config, step, started)
        checkpoint = None
        if rank == 0:  # every epoch: a run cut short still leaves its latest weights
            directory = tempfile.mkdtemp(prefix="sbi-ckpt-")
            (Path(directory) / MODEL_FILE).write_bytes(export_torchscript(_bare(network), config["image_size"]))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)
        if last:
            break


def training_dataset(cache: str, train_identities: set[str], options: TrainOptions):
    import ray.data

    dataset = read_faces(cache, columns=["identity", "region", "landmarks", "status"]).filter(
        fn=lambda row: row["identity"] in train_identities, num_cpus=READ_CPUS).randomize_block_order()
    if options.epoch_fraction < 1.0:
        dataset = dataset.random_sample(options.epoch_fraction)
    return dataset.map_batches(
        PairMaker, fn_constructor_kwargs={"size": options.image_size}, batch_size=options.batch_size,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=1), num_cpus=options.data_cpus)


def fit(options: TrainOptions, dataset, validation_ref, total_steps: int,
        init_state_ref=None) -> tuple[bytes, list[dict]]:
    """Runs TorchTrainer; returns the TorchScript bytes and the per-epoch metrics."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    results_dir = options.checkpoint_dir or tempfile.mkdtemp(prefix="vipwatch-train-")
    try:
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"epochs": options.epochs, "image_size": options.image_size, "lr": options.lr,
                               "head_lr_factor": options.head_lr_factor, "backbone": options.backbone,
                               "backbone_weights": options.backbone_weights, "batch_size": options.batch_size,
                               "seed": options.seed, "validation": validation_ref, "total_steps": total_steps,
                               "max_steps": options.max_steps, "max_train_minutes": options.max_train_minutes,
                               "init_state": init_state_ref, "log_every": 10},
            # Fractional / explicit CPUs: a worker holding every CPU starves Ray Data's tasks.
            scaling_config=ScalingConfig(num_workers=options.num_workers, use_gpu=options.use_gpu,
                                         resources_per_worker={"CPU": options.cpus_per_worker}),
            run_config=RunConfig(name="train_forgery", storage_path=results_dir,
                                 checkpoint_config=CheckpointConfig(num_to_keep=2)),
            datasets={"train": dataset},
        )
        result = trainer.fit()
        if result.error:
            raise result.error
        with result.checkpoint.as_directory() as directory:
            model_bytes = (Path(directory) / MODEL_FILE).read_bytes()
        history = [dict(m) for m in (result.metrics_dataframe.to_dict("records")
                                     if result.metrics_dataframe is not None else [result.metrics])]
        return model_bytes, history
    finally:
        if not options.checkpoint_dir:
            shutil.rmtree(results_dir, ignore_errors=True)


def _clean(record: dict) -> dict:
    return {k: (float(v) if isinstance(v, (np.floating, float)) else int(v) if isinstance(v, (np.integer, int)) else v)
            for k, v in record.items() if k.startswith(("epoch", "train_", "val_", "steps"))}


def evaluate_artifact(model_bytes: bytes, inputs_real: np.ndarray, inputs_fake: np.ndarray) -> dict:
    scripted = torch.jit.load(io.BytesIO(model_bytes), map_location="cpu").eval()
    return separation_metrics(score_inputs(scripted, inputs_real), score_inputs(scripted, inputs_fake))


def validation_pairs(rows, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out faces and one fixed (seeded) self-blend each, laundered like training pairs."""
    images, labels = pairs_from_rows(list(rows["region"]), list(rows["landmarks"]), np.random.default_rng(seed),
                                     size, Augment(flip_p=0.0))
    return images[labels == 0], images[labels == 1]


def initial_artefact(options: TrainOptions) -> Optional[dict]:
    """The artefact a run continues from: its manifest and network weights, after checking that
    it has this run's network and input."""
    if not options.init_from:
        return None
    manifest, model_bytes = read_artifact(options.init_from, options.storage)
    if manifest.get("backbone") != options.backbone or int(manifest["input"]["size"]) != options.image_size:
        raise ValueError(f"--init-from {options.init_from}: backbone {manifest.get('backbone')} at "
                         f"{manifest['input']['size']} px, this run trains {options.backbone} at {options.image_size} px")
    return {"manifest": manifest, "state": network_state(model_bytes)}


def check_held_out(init_manifest: dict, train_ids: set[str]) -> None:
    """A continued run must not train on the people its starting point held out: they are the
    held-out evaluation set of both artefacts."""
    leaked = sorted(set(init_manifest["training_data"]["validation"]["identities"]) & train_ids)
    if leaked:
        raise ValueError(f"{len(leaked)} identities held out by {init_manifest['version']} would be trained on "
                         f"(e.g. {leaked[:3]}): use the same sources, --val-source, --val-fraction and --seed")


def continued_from(init_manifest: dict, uri: str) -> dict:
    previous = init_manifest.get("init_from")
    return {"artefact": uri, "version": init_manifest["version"], "model_sha256": init_manifest["model_sha256"],
            "steps": int(init_manifest["recipe"].get("total_steps", init_manifest["recipe"]["steps"])),
            "train_seconds": float(init_manifest["timing"].get("total_train_seconds",
                                                               init_manifest["timing"]["train_seconds"])),
            "optimiser": init_manifest["recipe"]["optimiser"], "batch_size_pairs": init_manifest["recipe"]["batch_size_pairs"],
            "history": init_manifest.get("history", []), **({"init_from": previous} if previous else {})}


def run_training(options: TrainOptions) -> dict:
    if bool(options.val_real) != bool(options.val_fake):
        raise ValueError("--val-real and --val-fake go together")
    initial = initial_artefact(options)
    started = time.monotonic()
    init_ray()
    import ray

    cache_manifest = build_face_cache(options.real, options.cache, options.storage, options.max_per_identity)
    cache_seconds = time.monotonic() - started
    index = read_faces(options.cache, columns=["source", "identity", "status"]).to_pandas()
    val_source = options.val_source or max(cache_manifest["sources"], key=lambda s: cache_manifest["sources"][s]["faces"])
    train_ids, val_ids = split_by_identity(list(index["identity"]), list(index["source"]), val_source,
                                           options.val_fraction, options.seed)
    if initial:
        check_held_out(initial["manifest"], train_ids)
    train_rows = index[index["identity"].isin(train_ids)]
    val_index = index[index["identity"].isin(val_ids)]
    val_rows = read_faces(options.cache, columns=["identity", "region", "landmarks", "status", "image_uri"]) \
        .filter(fn=lambda row: row["identity"] in val_ids).to_pandas()
    val_rows = val_rows.sort_values("image_uri").iloc[:options.max_val_faces]
    val_real, val_fake = validation_pairs(val_rows, options.image_size, seed=options.seed + 7)
    steps_per_epoch = math.ceil(len(train_rows) * options.epoch_fraction / options.batch_size / options.num_workers)
    total_steps = min(steps_per_epoch * options.epochs, options.max_steps or 1 << 62)
    log.info("training on %d faces (%d identities), validating on %d held-out %s faces; %d steps",
             len(train_rows), train_rows["identity"].nunique(), len(val_rows), val_source, total_steps)

    train_started = time.monotonic()
    model_bytes, history = fit(options, training_dataset(options.cache, train_ids, options),
                               ray.put((val_real, val_fake)), total_steps,
                               ray.put(initial["state"]) if initial else None)
    train_seconds = time.monotonic() - train_started
    metrics = {"held_out_real_vs_sbi": {"source": val_source, **evaluate_artifact(model_bytes, val_real, val_fake)}}
    if options.val_real:
        external = [load_faces(uri, model=options.model, storage_config=options.storage, pad_fraction=options.val_pad)
                    for uri in (options.val_real, options.val_fake)]
        metrics["external"] = {
            "real_data": external[0].describe(), "fake_data": external[1].describe(),
            **evaluate_artifact(model_bytes, model_inputs(external[0].faces, options.image_size),
                                model_inputs(external[1].faces, options.image_size))}

    digest = hashlib.sha256(model_bytes).hexdigest()
    sources = [source.name for source in options.real]
    steps = int(history[-1].get("steps", 0)) if history else 0
    earlier = continued_from(initial["manifest"], options.init_from) if initial else None
    manifest = {
        "version": options.version or f"sbi-{options.backbone}{options.image_size}@{digest[:8]}",
        "kind": "sbi", "model_file": MODEL_FILE, "model_sha256": digest, "format": "torchscript",
        "input": {"size": options.image_size, "context_window": list(SBI_WINDOW), "dtype": "uint8",
                  "layout": "NHWC RGB", "output": "P(fake)",
                  "framing": "ArcFace 5-point alignment; the window of the 224 context crop (operators/align.py)"},
        "backbone": options.backbone,
        "backbone_weights": str(options.backbone_weights or (MOBILEFACENET if options.backbone == "mfn" else "none")),
        "recipe": {
            "method": "Self-Blended Images (Shiohara & Yamasaki, CVPR 2022)",
            "landmarks": "dlib HOG detector + 68-point shape predictor",
            "mask": {"hulls": list(HULL_KINDS), "elastic": "smooth random field, 1-5% of face size",
                     "blur": "gaussian, threshold at 1, gaussian (kernels 2-12% of face size)",
                     "blend_ratios": list(BLEND_RATIOS)},
            "perturbation": "source or target (50/50): RGB shift, HSV, brightness/contrast, then downscale-upscale or "
                            "sharpen; source and mask scaled 0.95-1.05 and shifted up to 3% of face size",
            "augmentation": asdict(Augment()) | {"applied": "alike to real and blend, at native resolution; crop "
                                                 "jitter then area-interpolated crop (face_crop.native_crop)"},
            "optimiser": {"name": "AdamW", "lr": options.lr, "head_lr_factor": options.head_lr_factor,
                          "weight_decay": 1e-4, "schedule": "warm-up 5% then cosine, per step"},
            "epochs": options.epochs, "epoch_fraction": options.epoch_fraction, "batch_size_pairs": options.batch_size,
            "max_steps": options.max_steps, "max_train_minutes": options.max_train_minutes, "steps": steps,
            "total_steps": steps + (earlier["steps"] if earlier else 0), "seed": options.seed,
            "departures": ["AdamW instead of SAM", "MobileFaceNet features (112-template scale, 128 px window) "
                           "instead of EfficientNet-B4 at 380 px", "68 landmarks, no 81-point forehead model "
                           "('extended' hull raises the brows instead)",
                           "far fewer steps than the paper's 100 epochs (see train_seconds)"],
        },
        "training_data": {"cache": cache_manifest["sources"], "val_source": val_source, "split": "by_identity",
                          "train": {"faces": int(len(train_rows)), "identities": int(train_rows["identity"].nunique()),
                                    "by_source": {k: int(v) for k, v in train_rows["source"].value_counts().items()}},
                          "validation": {"faces_held_out": int(len(val_index)), "faces_scored": int(len(val_rows)),
                                         "identities": sorted(val_ids)},
                          "fakes": "self-blended images made from the real faces during training"},
        "licences": {"data": {name: DATA_TERMS.get(name, "not recorded") for name in sources},
                     "backbone": BACKBONE_TERMS.get(options.backbone, "trained from scratch"),
                     "landmarks": LANDMARK_TERMS,
                     "artefact": "research / non-commercial use only: it inherits the most restrictive terms above"},
        "ray_train": {"num_workers": options.num_workers, "use_gpu": options.use_gpu,
                      "cpus_per_worker": options.cpus_per_worker},
        "timing": {"face_cache_seconds": round(cache_seconds, 1), "train_seconds": round(train_seconds, 1),
                   "total_train_seconds": round(train_seconds + (earlier["train_seconds"] if earlier else 0.0), 1)},
        **({"init_from": earlier} if earlier else {}),
        "metrics": metrics, "history": [_clean(h) for h in history],
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    storage.write_bytes(storage.join(options.out, MODEL_FILE), model_bytes, options.storage)
    storage.write_bytes(storage.join(options.out, MANIFEST_FILE),
                        json.dumps(manifest, indent=2).encode("utf-8"), options.storage)
    return manifest
