"""infra/: the KubeRay manifests, the cluster launcher config and the image recipe.

No Kubernetes cluster here, so the manifests are checked for what would break a deployment:
the crawl entrypoint must parse with the real jobs.crawl parser, images and Ray versions must
match the pinned stack, GPU workers must ask for GPUs, the schedule must be a valid cron line,
and the Serve import path must resolve to the real application builder.
"""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from core.config import REPO_ROOT

INFRA = REPO_ROOT / "infra"
KUBERAY = INFRA / "kuberay"
GPU = "nvidia.com/gpu"


def load(path: Path) -> dict:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(documents) == 1, f"{path.name}: expected one document, got {len(documents)}"
    return documents[0]


def pinned_ray_version() -> str:
    found = re.search(r'"ray\[[^\]]*\]==([\d.]+)"', (REPO_ROOT / "pyproject.toml").read_text())
    assert found, "ray is not pinned in pyproject.toml"
    return found.group(1)


def crawl_argv(entrypoint: str) -> list[str]:
    """The entrypoint runs through a shell: $(...) substitutions stand for one word."""
    words = shlex.split(re.sub(r"\$\([^)]*\)", "SUBSTITUTED", entrypoint))
    assert words[:3] == ["python", "-m", "jobs.crawl"], f"entrypoint does not run jobs.crawl: {entrypoint!r}"
    return words[3:]


def containers(pod_template: dict) -> list[dict]:
    return pod_template["template"]["spec"]["containers"]


def gpu_limit(container: dict) -> int:
    return int(container.get("resources", {}).get("limits", {}).get(GPU, 0))


def check_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == pinned_ray_version()
    head = containers(spec["headGroupSpec"])
    workers = [c for group in spec["workerGroupSpecs"] for c in containers(group)]
    images = {c.get("image") for c in head + workers}
    assert len(images) == 1 and None not in images and "" not in images, f"one image everywhere, got {images}"
    assert all(":" in image and not image.endswith(":latest") for image in images), "pin the image tag"
    assert all(gpu_limit(c) == 0 for c in head), "the head must not hold a GPU"
    gpu_groups = [g for g in spec["workerGroupSpecs"] if all(gpu_limit(c) >= 1 for c in containers(g))]
    assert gpu_groups, "no worker group asks for nvidia.com/gpu"
    for group in gpu_groups:
        for container in containers(group):
            assert container["resources"]["requests"].get(GPU) == container["resources"]["limits"][GPU]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def check_crawl_job(spec: dict) -> None:
    from jobs.crawl import parse_config

    config, args = parse_config(crawl_argv(spec["entrypoint"]))
    assert config.input.startswith("s3://") and config.output.startswith("s3://") and config.gallery.startswith("s3://")
    # GPU workers exist to run the analyzer: the crawl must ask for them.
    assert config.resources.analyzer_num_gpus > 0 and config.model.device in ("cuda", "auto")
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(runtime_env.get("env_vars"), dict)
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values()), "env var values must be strings"
    assert spec["shutdownAfterJobFinishes"] is True
    check_cluster_spec(spec["rayClusterSpec"])


def test_every_yaml_in_infra_parses():
    paths = sorted(INFRA.rglob("*.yaml")) + sorted(INFRA.rglob("*.yml"))
    assert {p.name for p in paths} >= {"rayjob-crawl.yaml", "raycronjob-crawl.yaml", "rayservice.yaml", "cluster.yaml"}
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            assert document is None or isinstance(document, dict), path


def test_rayjob_runs_the_crawl_on_gpu_workers():
    manifest = load(KUBERAY / "rayjob-crawl.yaml")
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    check_crawl_job(manifest["spec"])


CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def cron_field_valid(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if not match or (match.group(2) is not None and int(match.group(2)) == 0):
            return False
        if match.group(1) != "*":
            bounds = [int(x) for x in match.group(1).split("-")]
            if not all(low <= b <= high for b in bounds) or bounds != sorted(bounds):
                return False
    return True


def cron_valid(expression: str) -> bool:
    fields = expression.split()
    return len(fields) == 5 and all(cron_field_valid(f, *r) for f, r in zip(fields, CRON_RANGES))


@pytest.mark.parametrize("expression, valid", [
    ("30 2 * * *", True), ("*/15 0-6 1,15 * 1-5", True), ("60 2 * * *", False), ("30 2 * *", False),
    ("30 24 * * *", False), ("*/0 * * * *", False), ("5-1 * * * *", False), ("@nightly", False),
])
def test_cron_validator(expression, valid):
    assert cron_valid(expression) is valid


def test_raycronjob_schedules_the_same_crawl_nightly():
    manifest = load(KUBERAY / "raycronjob-crawl.yaml")
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCronJob")
    spec = manifest["spec"]
    assert cron_valid(spec["schedule"]), spec["schedule"]
    # Once a day: minute and hour fixed, every day of the month, month and week.
    minute, hour, *rest = spec["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]
    # The RayCronJob CRD (KubeRay 1.6) knows only these; unknown fields are dropped by the API server.
    assert set(spec) <= {"schedule", "jobTemplate", "suspend"}
    template = spec["jobTemplate"]
    check_crawl_job(template)
    # A job that may run longer than a day would overlap the next night's run.
    assert 0 < template["activeDeadlineSeconds"] < 24 * 3600
    single = load(KUBERAY / "rayjob-crawl.yaml")["spec"]
    assert template["rayClusterSpec"] == single["rayClusterSpec"], "keep the nightly cluster in step with rayjob-crawl.yaml"


def resolve_import_path(import_path: str):
    module_name, _, attribute = import_path.partition(":")
    if not attribute:
        module_name, _, attribute = import_path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def test_rayservice_import_path_resolves_and_args_validate():
    manifest = load(KUBERAY / "rayservice.yaml")
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    serve_config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    applications = serve_config["applications"]
    assert applications, "no Serve application"
    serve_yaml = INFRA / "serve.yaml"
    reference = yaml.safe_load(serve_yaml.read_text()) if serve_yaml.exists() else None
    for application in applications:
        builder = resolve_import_path(application["import_path"])
        assert callable(builder)
        if reference is not None:
            assert application["import_path"] in {a["import_path"] for a in reference["applications"]}, \
                "rayservice.yaml and infra/serve.yaml must serve the same app"
        from core.config import ServeConfig

        # Serve validates args into the builder's config type at deploy time; do it now.
        config = ServeConfig.model_validate(application["args"])
        assert config.gallery.startswith("s3://")
        assert all(p.startswith("s3://") for p in config.allowed_uri_prefixes)
    check_cluster_spec(manifest["spec"]["rayClusterConfig"])
    # The API keys reach the pods from a Secret, never as literal values in the manifest.
    head = containers(manifest["spec"]["rayClusterConfig"]["headGroupSpec"])[0]
    assert any("secretRef" in source for source in head.get("envFrom", []))
    assert "API_KEY:" not in manifest["spec"]["serveConfigV2"]


def test_cluster_launcher_config_passes_rays_own_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load(INFRA / "cluster.yaml")
    # What `ray up` does first: fill the provider's defaults, then check against ray-schema.json.
    validate_config(prepare_config(config))
    node_types = config["available_node_types"]
    assert config["head_node_type"] in node_types
    assert node_types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    assert any(t["resources"].get("GPU", 0) >= 1 for t in node_types.values()), "no GPU node type"
    assert "--gpus all" in " ".join(config["docker"].get("worker_run_options", []))
    images = {config["docker"]["image"]} | {load(KUBERAY / "rayjob-crawl.yaml")["spec"]["rayClusterSpec"]
                                             ["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]}
    assert len(images) == 1, f"cluster.yaml and the KubeRay manifests use different images: {images}"


def test_dockerfile_installs_the_pinned_stack_without_weights():
    text = (INFRA / "Dockerfile").read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any(line.startswith("FROM ") for line in instructions)
    assert "python3.11" in text and "infra/install.sh" in text
    copies = [line for line in instructions if line.startswith(("COPY", "ADD"))]
    assert copies, "the image must contain the code"
    for line in copies:
        # Weights and data are user-supplied artefacts: nothing from ../shared, no model files.
        assert not re.search(r"shared|models|\.onnx|\.h5|\.dat|faces_aligned", line), line
    assert not any(line.startswith("ADD") and "://" in line for line in copies), "no downloads at build time"
