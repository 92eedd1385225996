"""All tunable settings in one typed place.

Each job builds one of these models from its command line; the same models are
used by the Serve app and by tests, so a default changes in one place only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout holds the real images and weights (never copied into the repo).
SHARED_DIR = Path(os.environ.get("VIPWATCH_SHARED", REPO_ROOT.parent / "shared")).resolve()


class StorageConfig(BaseModel):
    """Where s3:// URIs go. Empty endpoint means real AWS; tests point it at a local server."""

    endpoint_url: Optional[str] = Field(
        default_factory=lambda: os.environ.get("VIPWATCH_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    )
    region: str = Field(default_factory=lambda: os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    retry_attempts: int = 8


class ModelPackConfig(BaseModel):
    """A model pack = detector + 5-point landmarks + alignment + embedder.

    ``pack`` is ``dlib`` / ``dlib:cnn`` (weights from the face-recognition-models wheel) or a
    directory / s3:// prefix holding an insightface-format ONNX pack.
    """

    pack: str = "dlib"
    detector: Literal["auto", "scrfd", "yunet"] = "auto"
    # Pick files inside an ONNX pack directory that holds several detectors / embedders.
    detector_file: Optional[str] = None
    embedder_file: Optional[str] = None
    det_size: int = 640
    det_threshold: float = 0.5
    # Faces per recogniser call. A batch of crowd photos can hold hundreds of faces, and one
    # onnxruntime run over all of them grows its memory arena to that size for the actor's life.
    embed_batch_size: int = 64
    min_face_px: int = 20
    # dlib HOG: upsampling finds smaller faces at ~3x the cost.
    dlib_upsample: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"


class DecodeConfig(BaseModel):
    # Declared pixel count above which an image is refused unread (decompression bombs).
    max_decode_pixels: int = 80_000_000
    # Images are downscaled so that the long side is at most this; boxes are mapped back.
    max_side: int = 2048
    max_bytes: int = 200 * 1024 * 1024
    video_frame_interval_s: float = 1.0
    # Sampled frames analysed per video.
    video_max_frames: int = 32
    # Refused before any frame is decoded (a 4xx on Serve, an error row in the crawl), from the
    # container's declared size, length and frame count: a long or huge video costs decode time
    # even when only video_max_frames are analysed.
    video_max_pixels_per_frame: int = 3840 * 2160
    video_max_duration_s: float = 600.0
    video_max_source_frames: int = 36_000


# Eyes closer than this (px, original image): identity embeddings no longer keep the gallery
# threshold's promise (docs/identification.md, "Small faces").
MIN_IDENTIFY_EYE_PX = 20.0


class MatchConfig(BaseModel):
    top_k: int = 5
    # Used only when the gallery manifest carries no calibrated threshold.
    fallback_threshold: float = 0.5
    # A face whose eyes are closer than this (px, original image) gets no identity_id (its
    # match_score and candidates stay): the threshold's FPIR is calibrated on LFW-sized faces and
    # does not hold for much smaller ones (docs/identification.md, "Small faces"). 0: no gate.
    min_identify_eye_px: float = MIN_IDENTIFY_EYE_PX


class RayResources(BaseModel):
    """Actor pool sizing. Fractional CPUs keep read/decode tasks schedulable on small nodes."""

    # Images per FaceAnalyzer call: larger batches halve the tasks and feed the recogniser larger
    # batches, at the price of larger blocks in the object store (the measured trade-off:
    # docs/performance.md, tuning table). In a fused pool (fuse_face_stages) the matcher and a CPU
    # forgery scorer get the same batches: their own batch sizes apply only to pools of their own.
    batch_size: int = 32
    analyzer_actors: int = 1
    analyzer_num_cpus: float = 1.0
    analyzer_num_gpus: float = 0.0
    # onnxruntime intra-op threads per analyzer actor (0 = one per whole CPU the actor reserves).
    # 2, not 1: the actor reserves 1.0 CPU (1.25 with the fused matcher) so that read/decode
    # stay schedulable, but its second thread uses the core whenever decode idles (its threads
    # sleep rather than spin, operators/packs/onnx_pack.py). One actor with two threads beat two
    # actors with one each, which also hold the models twice (docs/performance.md).
    analyzer_threads: int = 2
    matcher_num_cpus: float = 0.25
    # Consecutive face stages share one actor pool unless a stage needs GPUs of its own
    # (vipwatch.crawl.pools.stage_pools): analyzer + matcher (+ a CPU forgery scorer) + the output projection
    # in one process, so rows cross the object store once and without their crops. False: one
    # pool per stage, e.g. to scale a CPU matcher apart from GPU analyzers.
    fuse_face_stages: bool = True
    # Decode runs in its own CPU actor pool of this size (0: as Ray tasks). Tasks on a small node
    # churn worker processes, each paying for its imports again (jobs.benchmark cpu_s_by_role).
    decode_actors: int = 1
    # Input files per read task (one read block, decoded in one call: the read is fused into the
    # decode actors).
    files_per_read_task: int = 16
    # Read tasks per execution at most: past files_per_read_task x this many inputs, a task reads
    # several blocks in turn (the driver holds a few hundred bytes per task; vipwatch/crawl/reader.py).
    max_read_tasks: int = 10_000
    # Tasks: read, decode and write must fit beside the actors, or the job hangs.
    read_num_cpus: float = 0.25
    decode_num_cpus: float = 0.25
    write_num_cpus: float = 0.25


DEFAULT_WEAK_MATCH_FPIR = 0.10


class ForgeryConfig(BaseModel):
    """Forgery scoring: artefact detectors (any number; operators/forgery/base.py contract), the
    identity-aware signal, and the fusion artefact written by jobs.calibrate."""

    enabled: bool = True
    # "<kind>:<uri>" per detector, kind in {mesonet, sbi}. MesoNet Meso4_DF measures face size,
    # not forgery (issue 14: P(fake) > 0.5 for 92% of demo faces with eyes < 20 px apart), so it
    # is only used when asked for (--forgery-detector mesonet:<h5>); a default never points into
    # ../shared. None: the detectors the fusion was fitted with (its metadata's scorer.detectors),
    # as a fusion weighing "artefact:<kind>" needs that detector. The dlib default
    # (DEFAULT.dlib, fusion-lr@fccced6e) brings sbi:sbi-mfn-v6, the project's own SBI model inside
    # the package; the ONNX default (DEFAULT) brings none. [] (CLI "--forgery-detector none"):
    # none, whatever the fusion (docs/forgery.md "Default set").
    detectors: Optional[list[str]] = None
    # "shipped": the calibrated fusion shipped inside the package (operators/forgery/artefacts/,
    # fitted by jobs.forgery_benchmark --write-fusion on the benchmark's calibration side at a
    # stated forgery prior; docs/forgery.md), the one fitted on the scorer's pack family (DEFAULT,
    # DEFAULT.dlib): identity signals are spreads of that pack's own cosines. With a second_pack,
    # the one fitted with both embedders (DEFAULT.dlib+<embedder_id>: fusion-lr@7ba1f626 for dlib +
    # MobileFaceNet); a pair no shipped fusion was fitted with is refused. Or a jobs.calibrate /
    # jobs.forgery_benchmark artefact (a JSON file or an artefact directory). "uncalibrated" (or
    # None): the hand-made ranking, not a probability, marked so in forgery_model; only when asked.
    fusion_model: Optional[str] = "shipped"
    # A face below the match threshold still gets the identity check against its top candidate
    # when that candidate scores above the gallery's impostor quantile at this rate: swaps of X
    # often match X only weakly. None: the rate the fusion was fitted at (its signals_model's
    # "/weak<rate>"; which faces are candidates changes what its threshold promises), else
    # DEFAULT_WEAK_MATCH_FPIR.
    weak_match_fpir: Optional[float] = Field(default=None, gt=0.0, le=1.0)
    use_identity_signal: bool = True
    # A second model pack's embedder reads the same identity signals (named "pack2:<signal>")
    # on the first pack's aligned crops, against ``second_gallery``: a gallery of the same
    # identities enrolled with that pack (jobs.build_gallery --model-pack ...). Two embedders miss
    # different swaps (docs/forgery.md "Two packs' identity signals"); it costs a second embedder
    # per face and needs the user's weights, so it is opt-in; "shipped" then takes the fusion
    # fitted with it, as only such a fusion uses its signals.
    second_pack: Optional[ModelPackConfig] = None
    second_gallery: Optional[str] = None
    # Inner-face vs outer-ring identity consistency of every face (operators/forgery/
    # region_consistency.py; heads trained on authentic faces by jobs.train_region_consistency):
    # "shipped" uses the package's heads for each pack's embedder where there are some, "off"
    # none, or an artefact URI (trained on the scorer's own pack; a second pack then uses its
    # shipped heads). Its signal only enters a fusion fitted with it.
    region_consistency: Optional[str] = "shipped"
    # Identity similarities are to the nearest references of a VIP: mean of the top k cosines.
    reference_top_k: int = 3
    # Quality gate (operators/forgery/quality.py): below either, artefact detectors do not judge
    # the face (their signals are missing, `reasons` says why). Inter-ocular distance in original
    # pixels; sharpness = variance of the Laplacian of the 112x112 aligned crop. Chosen from
    # jobs.forgery_size_sweep (219 faces, docs/forgery.md "Size and quality gate"): below 32 px
    # MesoNet's scores of authentic faces climb with every step down (Meso4_DF flags 69% -> 89%,
    # MesoInception_F2F 1% -> 5%); below sharpness 50 Meso4_DF flags 86-97% of them.
    min_inter_ocular_px: float = 32.0
    min_sharpness: float = 50.0
    # Which gate withholds region consistency. "artefact": the one above (set for MesoNet; every
    # fusion before session 29 was fitted so). "identity": only faces whose eyes are closer than
    # consistency_min_inter_ocular_px, the floor of the identity embeddings its heads read
    # (docs/forgery.md "Region consistency below the artefact gate"). None: as the fusion was
    # fitted (its signals_model's "consistency-gate=identity@<px>px", else "artefact").
    consistency_gate: Optional[Literal["artefact", "identity"]] = None
    consistency_min_inter_ocular_px: float = MIN_IDENTIFY_EYE_PX
    # Faces with no VIP candidate get a verdict from a calibrated fusion's generic head (artefact
    # signals only); otherwise they stay 'unverified'.
    generic_verdicts: bool = True
    batch_size: int = 64
    num_cpus: float = 0.25
    num_gpus: float = 0.0

    @model_validator(mode="after")
    def _second_pack_has_its_gallery(self) -> "ForgeryConfig":
        if (self.second_pack is None) != (self.second_gallery is None):
            raise ValueError("second_pack and second_gallery go together: the second pack's signals are read "
                             "against a gallery enrolled with it")
        return self


class LineRange(BaseModel):
    """Lines ``start`` <= n < ``end`` of a manifest file, the first line being 0 (Python's slice;
    blank, comment and header lines count), ``end`` None: to the end. Several crawl jobs split
    one large manifest by taking adjacent ranges (docs/jobs.md)."""

    start: int = Field(default=0, ge=0)
    end: Optional[int] = None

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: Optional[int], info) -> Optional[int]:
        if end is not None and end <= info.data.get("start", 0):
            raise ValueError(f"the line range ends ({end}) at or before its start ({info.data.get('start', 0)})")
        return end

    @classmethod
    def parse(cls, text: str) -> "LineRange":
        """``START:END``, ``START:`` or ``:END`` (jobs.crawl --manifest-lines)."""
        start, colon, end = text.partition(":")
        if not colon:
            raise ValueError(f"a line range is START:END (either side may be empty), not {text!r}")
        return cls(start=int(start) if start.strip() else 0, end=int(end) if end.strip() else None)

    def __str__(self) -> str:
        return f"{self.start}:{'' if self.end is None else self.end}"


class FaceChainSettings(BaseModel):
    """What builds the face chain's operators (`operators.stages.face_stages`): shared by the crawl and
    the Serve app, so both run identically configured operators."""

    model: ModelPackConfig = Field(default_factory=ModelPackConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)
    resources: RayResources = Field(default_factory=RayResources)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    forgery: ForgeryConfig = Field(default_factory=ForgeryConfig)


class CrawlConfig(FaceChainSettings):
    input: str
    gallery: str
    output: str
    job_id: Optional[str] = None
    # Inputs per committed shard (vipwatch/crawl/shards.py): the unit redone after an
    # interruption. Every shard of a job runs in one Ray Data execution (vipwatch/crawl/run.py),
    # so the size no longer pays an actor start-up per shard (figures: docs/performance.md).
    shard_size: int = 10_000
    # A manifest input: crawl only these lines of it (None: every line).
    manifest_lines: Optional[LineRange] = None
    # Listed URIs sorted in memory per run before runs are spilled to local scratch and merged
    # (vipwatch/crawl/ordering.py): bounds the driver's listing memory whatever the input count.
    listing_run_keys: int = Field(default=1_000_000, ge=1)
    # Deprecated, ignored by the crawl since one execution streams every shard: the driver writes
    # one file per shard (vipwatch/crawl/stream.py). Kept so that existing command lines
    # (jobs.crawl / jobs.benchmark --min-rows-per-file) still parse. Was Ray Data's
    # min_rows_per_file hint for its write step.
    min_rows_per_file: Optional[int] = 5_000
    aligned: bool = False

    @field_validator("min_rows_per_file")
    @classmethod
    def _zero_is_none(cls, rows: Optional[int]) -> Optional[int]:
        return rows or None


class ServeAutoscaling(BaseModel):
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0


class ServeConfig(FaceChainSettings):
    """The HTTP endpoint: the crawl's model / decode / match settings plus request limits.

    It is also the Serve application builder's argument type, so `infra/serve.yaml` ``args``
    are validated against it. HTTP host and port are cluster-wide Serve options (``serve.start``
    / ``http_options``), not application settings, so they are not here.
    """

    gallery: str
    aligned: bool = False
    job_id: str = "serve"
    # Environment variables holding the bearer keys; never the keys themselves (config is visible
    # in `serve status`). Without an admin key the admin routes are refused.
    api_key_env: str = "VIPWATCH_API_KEY"
    admin_api_key_env: str = "VIPWATCH_ADMIN_API_KEY"
    # Files holding the keys (a mounted Kubernetes Secret); they win over the variables.
    api_key_file: Optional[str] = None
    admin_api_key_file: Optional[str] = None
    max_request_bytes: int = 20 * 1024 * 1024
    # s3:// prefixes a caller may name in {"uri": ...}, e.g. "s3://vip-uploads/" or
    # "s3://bucket/inbox/". Empty: URI requests are refused, only uploads are accepted.
    allowed_uri_prefixes: list[str] = Field(default_factory=list)
    # Extra roots the admin reload may load a gallery from (the served gallery's root always may).
    allowed_gallery_prefixes: list[str] = Field(default_factory=list)
    batch_wait_timeout_s: float = 0.02
    ingress_num_cpus: float = 0.25
    ingress_max_ongoing_requests: int = 64
    # Requests waiting for a replica beyond max_ongoing_requests, per caller of a deployment;
    # past it Serve answers 503 at once instead of queueing without bound.
    max_queued_requests: int = 128
    # One request's whole chain (decode, analyze, match, forgery); past it the caller gets 504.
    request_timeout_s: float = 60.0
    # The analyze deployment scales between these replica counts on ongoing requests per replica.
    autoscaling: Optional[ServeAutoscaling] = None
    # Object that remembers the gallery version an admin reload made active, so a restarted
    # replica loads that one instead of `gallery` (None: restarts go back to `gallery`).
    active_gallery_pointer: Optional[str] = None
    public_docs: bool = False

    def crawl_config(self) -> CrawlConfig:
        """The same stage settings the crawl would use, so `face_stages` builds identical operators."""
        chain = {name: getattr(self, name) for name in FaceChainSettings.model_fields}
        return CrawlConfig(input="", output="", gallery=self.gallery, job_id=self.job_id, aligned=self.aligned, **chain)
