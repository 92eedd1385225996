"""Train the SBI detector with Ray Train (TorchTrainer) and write a versioned artefact:
``model.pt`` (TorchScript, uint8 RGB faces -> P(fake)) + ``manifest.json``.

Real faces are loaded once on the driver and handed to the workers as a Ray Dataset (sharded
per worker); pseudo-fakes are made on the fly in the workers, a fresh blend every epoch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from vipwatch.training.sbi_data import FaceSet, load_faces, split_by_identity, training_batch, validation_pairs
from operators.forgery.sbi_model import (MANIFEST_FILE, MODEL_FILE, CONTEXT_WINDOW, build_network, export_torchscript,
                                         model_inputs, normalise)
from core import storage
from core.config import ModelPackConfig, StorageConfig
from vipwatch.ray_cluster import init_ray

log = logging.getLogger(__name__)



@dataclass
class TrainOptions:
    real: str
    out: str
    aligned: bool = False
    model: ModelPackConfig = field(default_factory=ModelPackConfig)
    epochs: int = 3
    image_size: int = 96
    backbone: str = "small"
    batch_size: int = 32
    lr: float = 2e-3
    val_fraction: float = 0.2
    max_per_identity: Optional[int] = None
    val_real: Optional[str] = None
    val_fake: Optional[str] = None
    val_pad: float = 0.5
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    seed: int = 0
    storage: StorageConfig = field(default_factory=StorageConfig)


def score_inputs(scorer: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray, batch: int = 128) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch):
            out.append(scorer(torch.from_numpy(np.array(inputs[start:start + batch]))).cpu().numpy())
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


def train_loop_per_worker(config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch as ray_torch

    rank = ray.train.get_context().get_world_rank()
    torch.manual_seed(config["seed"] + rank)
    rng = np.random.default_rng(config["seed"] + 1000 * rank)
    network = ray_torch.prepare_model(build_network(config["backbone"]))
    device = ray_torch.get_device()
    optimizer = torch.optim.AdamW(network.parameters(), lr=config["lr"], weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    val_real, val_fake = ray.get(config["validation"])
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(config["epochs"]):
        network.train()
        total, seen = 0.0, 0
        for batch in shard.iter_batches(batch_size=config["batch_size"], batch_format="numpy",
                                        local_shuffle_buffer_size=4 * config["batch_size"]):
            inputs, labels = training_batch(batch["data"], config["image_size"], rng)
            logits = network(normalise(torch.from_numpy(inputs)).to(device))
            loss = loss_fn(logits, torch.from_numpy(labels).to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(labels), seen + len(labels)
        schedule.step()
        network.eval()
        scorer = lambda x: torch.sigmoid(_bare(network)(normalise(x).to(device)))  # noqa: E731
        metrics = {"epoch": epoch + 1, "train_loss": total / max(seen, 1), "train_images": seen,
                   **{f"val_{k}": v for k, v in separation_metrics(score_inputs(scorer, val_real),
                                                                   score_inputs(scorer, val_fake)).items()}}
        checkpoint = None
        if rank == 0 and epoch == config["epochs"] - 1:
            directory = tempfile.mkdtemp(prefix="sbi-ckpt-")
            (Path(directory) / MODEL_FILE).write_bytes(export_torchscript(_bare(network)))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)


def fit(options: TrainOptions, train_faces: FaceSet, validation_ref) -> tuple[bytes, list[dict]]:
    """Runs TorchTrainer; returns the TorchScript bytes and the per-epoch metrics."""
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    results_dir = tempfile.mkdtemp(prefix="vipwatch-train-")
    try:
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"epochs": options.epochs, "image_size": options.image_size, "lr": options.lr,
                               "backbone": options.backbone, "batch_size": options.batch_size,
                               "seed": options.seed, "validation": validation_ref},
            # Fractional / explicit CPUs: a worker holding every CPU starves Ray Data's tasks.
            scaling_config=ScalingConfig(num_workers=options.num_workers, use_gpu=options.use_gpu,
                                         resources_per_worker={"CPU": options.cpus_per_worker}),
            run_config=RunConfig(name="train_forgery", storage_path=results_dir),
            datasets={"train": ray.data.from_numpy(train_faces.faces)},
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
        shutil.rmtree(results_dir, ignore_errors=True)


def _clean(record: dict) -> dict:
    return {k: (float(v) if isinstance(v, (np.floating, float)) else int(v) if isinstance(v, (np.integer, int)) else v)
            for k, v in record.items() if k.startswith(("epoch", "train_", "val_"))}


def evaluate_artifact(model_bytes: bytes, inputs_real: np.ndarray, inputs_fake: np.ndarray) -> dict:
    import io

    scripted = torch.jit.load(io.BytesIO(model_bytes), map_location="cpu").eval()
    return separation_metrics(score_inputs(scripted, inputs_real), score_inputs(scripted, inputs_fake))


def run_training(options: TrainOptions) -> dict:

    if bool(options.val_real) != bool(options.val_fake):
        raise ValueError("--val-real and --val-fake go together")
    faces = load_faces(options.real, aligned=options.aligned, model=options.model, storage_config=options.storage,
                       max_per_identity=options.max_per_identity)
    if len(faces.faces) < 2:
        raise ValueError(f"need at least 2 real faces under {options.real}, found {len(faces.faces)}")
    train_idx, val_idx, split = split_by_identity(faces, options.val_fraction, options.seed)
    train_set, val_set = faces.subset(train_idx), faces.subset(val_idx)
    val_real, val_fake = validation_pairs(val_set.faces, options.image_size, seed=options.seed + 7)
    log.info("training on %d faces (%s), validating on %d (%s)", len(train_idx),
             train_set.describe()["identity_count"], len(val_idx), split)

    init_ray()
    import ray

    model_bytes, history = fit(options, train_set, ray.put((val_real, val_fake)))
    metrics = {"held_out_real_vs_sbi": evaluate_artifact(model_bytes, val_real, val_fake)}
    if options.val_real:
        external = [load_faces(uri, model=options.model, storage_config=options.storage, pad_fraction=options.val_pad)
                    for uri in (options.val_real, options.val_fake)]
        metrics["external"] = {
            "real_data": external[0].describe(), "fake_data": external[1].describe(),
            **evaluate_artifact(model_bytes, model_inputs(external[0].faces, options.image_size),
                                model_inputs(external[1].faces, options.image_size))}

    digest = hashlib.sha256(model_bytes).hexdigest()
    manifest = {
        "version": f"sbi_{options.backbone}{options.image_size}@{digest[:8]}",
        "kind": "sbi", "model_file": MODEL_FILE, "model_sha256": digest, "format": "torchscript",
        "input": {"size": options.image_size, "context_window": list(CONTEXT_WINDOW), "dtype": "uint8",
                  "layout": "NHWC RGB", "output": "P(fake)"},
        "backbone": options.backbone, "epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr,
        "seed": options.seed,
        "training_data": {"real": faces.describe(), "aligned": options.aligned, "split": split,
                          "train": train_set.describe(), "validation": val_set.describe(),
                          "fakes": "self-blended images (SBI) made from the real faces during training"},
        "ray_train": {"num_workers": options.num_workers, "use_gpu": options.use_gpu,
                      "cpus_per_worker": options.cpus_per_worker},
        "metrics": metrics, "history": [_clean(h) for h in history],
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    storage.write_bytes(storage.join(options.out, MODEL_FILE), model_bytes, options.storage)
    storage.write_bytes(storage.join(options.out, MANIFEST_FILE),
                        json.dumps(manifest, indent=2).encode("utf-8"), options.storage)
    return manifest
