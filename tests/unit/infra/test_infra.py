"""infra/: the KubeRay manifests, the cluster launcher config and the image recipe.

No Kubernetes cluster here, so the manifests are checked for what would break a deployment:
each ray.io object validates against KubeRay v1.7.0's CRD schema (../shared/k8s, unknown fields
refused as `kubectl apply --validate=strict` would); each entrypoint and Serve config is parsed by
the real jobs.crawl parser / ServeConfig and every artefact it loads must be a URI or a file the
image holds; clusters require Ray's token; secrets, service accounts and network policies are
checked for who can reach what; images and Ray versions must match the pinned stack.
"""
from __future__ import annotations

import fnmatch
import functools
import importlib
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from core.config import REPO_ROOT, SHARED_DIR

INFRA = REPO_ROOT / "infra"
KUBERAY = INFRA / "kuberay"
GPU = "nvidia.com/gpu"


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


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


# ---- what a deployed config may load -----------------------------------------------------------
def docker_ignored() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def shipped_in_image(path: Path) -> bool:
    """A file of this checkout that the image holds: tracked by git (the build context is a
    checkout) and not left out by .dockerignore (the image copies the rest: `COPY . .`)."""
    try:
        relative = path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return False
    tracked = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "--error-unmatch", str(relative)],
                             capture_output=True).returncode == 0
    return tracked and not any(fnmatch.fnmatch(str(relative), pattern) or relative.parts[0] == pattern
                               for pattern in docker_ignored())


def artefact_problems(config) -> list[str]:
    """Every string in the config that names a file: it must be a URI, or a file the image holds,
    and never a path into ../shared or elsewhere on a development machine."""
    problems = []

    def visit(where: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{where}.{key}", item)
        elif isinstance(value, (list, tuple)):
            for position, item in enumerate(value):
                visit(f"{where}[{position}]", item)
        elif isinstance(value, str):
            # Detector specs are "<kind>:<uri>".
            target = value.partition(":")[2] if re.match(r"^[a-z]+:(?!//)", value) else value
            if re.match(r"^(s3|gs)://[^/]+(/|$)", target) or "/" not in target:
                return  # an object-store URI, or a name (dlib, scrfd_500m_kps.onnx, cuda ...)
            if re.match(r"^https?://", target):
                return  # an endpoint, not an artefact
            path = Path(target)
            if str(SHARED_DIR) in str(path.resolve()) or "shared/" in target:
                problems.append(f"{where}={value!r} points into ../shared (development data)")
            elif not path.is_absolute():
                problems.append(f"{where}={value!r} is a relative path: it depends on the working directory")
            elif not shipped_in_image(path):
                problems.append(f"{where}={value!r} is neither a URI nor a file the image holds")

    # Key files are checked against the pods' Secret mounts instead (test_rayservice_...).
    visit("config", config.model_dump(exclude={"storage", "api_key_file", "admin_api_key_file"}))
    return problems


def check_deployable(config) -> None:
    problems = artefact_problems(config)
    assert not problems, "\n".join(problems)


def test_the_artefact_check_catches_development_paths():
    from core.config import CrawlConfig, ForgeryConfig, ModelPackConfig

    shipped = REPO_ROOT / "jobs" / "crawl.py"   # any tracked file the image copies
    good = CrawlConfig(input="s3://b/in/", gallery="s3://b/g", output="s3://b/out",
                       model=ModelPackConfig(pack="s3://b/pack"),
                       forgery=ForgeryConfig(detectors=["sbi:s3://b/sbi"], fusion_model=str(shipped)))
    assert artefact_problems(good) == []
    bad = good.model_copy(update={
        "forgery": ForgeryConfig(detectors=[f"mesonet:{SHARED_DIR / 'models' / 'mesonet' / 'Meso4_DF.h5'}"],
                                 fusion_model="../shared/fusion.json"),
        "model": ModelPackConfig(pack="/home/dev/vipwatch/models")})
    found = "\n".join(artefact_problems(bad))
    assert "forgery.detectors[0]" in found and "points into ../shared" in found
    assert "forgery.fusion_model" in found and "model.pack" in found


def secret_volume(group: dict, name: str) -> bool:
    return any(v["name"] == name and "secret" in v for v in group["template"]["spec"].get("volumes", []))


def check_pods(spec: dict, component: str) -> None:
    """Labels the network policy selects, the role's own service account, no secrets in env."""
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        template = group["template"]
        assert template["metadata"]["labels"] == {"app.kubernetes.io/name": "vipwatch",
                                                  "app.kubernetes.io/component": component}
        assert template["spec"]["serviceAccountName"] == f"vipwatch-{component}"
        for container in template["spec"]["containers"]:
            assert not any("secretRef" in source for source in container.get("envFrom", [])), \
                "secrets as files, not as every process's environment"
            assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in container.get("env", []))
    for group in spec["workerGroupSpecs"]:
        assert group["template"]["spec"].get("automountServiceAccountToken") is False
    mounts_secrets = any(secret_volume(g, v["name"]) for g in groups for v in g["template"]["spec"].get("volumes", []))
    assert mounts_secrets == (component == "serve"), "only the Serve cluster holds the API keys"


def check_serve_limits(config) -> None:
    assert 0 < config.max_queued_requests <= 1024
    assert 0 < config.request_timeout_s <= 300
    assert config.autoscaling is not None and 1 <= config.autoscaling.min_replicas <= config.autoscaling.max_replicas
    decode = config.decode
    assert decode.video_max_pixels_per_frame <= 3840 * 2160 and decode.video_max_duration_s <= 3600
    assert decode.video_max_source_frames <= 100_000 and decode.video_max_frames <= 64


def check_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == pinned_ray_version()
    # Ray >= 2.52 with KubeRay >= 1.5.1: a generated token on every Ray container and the submitter.
    assert spec.get("authOptions", {}).get("mode") == "token", "the cluster must require Ray's auth token"
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
    check_deployable(config)
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(runtime_env.get("env_vars"), dict)
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values()), "env var values must be strings"
    # The GPU cluster goes within minutes of the job's end, not hours.
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] <= 300
    check_cluster_spec(spec["rayClusterSpec"])
    check_pods(spec["rayClusterSpec"], "crawl")


def test_every_yaml_in_infra_parses():
    paths = sorted(INFRA.rglob("*.yaml")) + sorted(INFRA.rglob("*.yml"))
    assert {p.name for p in paths} >= {"networkpolicy.yaml", "serviceaccounts.yaml", "cronjob-crawl.yaml",
                                        "cleanup-cronjob.yaml"}
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
    assert spec["timeZone"] == "Etc/UTC"
    template = spec["jobTemplate"]
    check_crawl_job(template)
    # The run id is `date -u +%Y%m%d` in the entrypoint: the same on every retry only if every
    # attempt of a night ends before midnight UTC.
    attempts = template["backoffLimit"] + 1
    assert int(hour) * 3600 + int(minute) * 60 + attempts * template["activeDeadlineSeconds"] < 24 * 3600
    substitutions = set(re.findall(r"\$\([^)]*\)", template["entrypoint"]))
    assert substitutions == {"$(date -u +%Y%m%d)"}, substitutions
    single = load(KUBERAY / "rayjob-crawl.yaml")["spec"]
    assert template["rayClusterSpec"] == single["rayClusterSpec"], "keep the nightly cluster in step with rayjob-crawl.yaml"


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_retried_rayjob_resumes_the_same_run():
    manifest = load(KUBERAY / "rayjob-crawl.yaml")
    entrypoint = manifest["spec"]["entrypoint"]
    assert "$(" not in entrypoint and "`" not in entrypoint, "nothing re-evaluated on a retry"
    argv = crawl_argv(entrypoint)
    job_id = option(argv, "--job-id")
    assert job_id == manifest["metadata"]["name"]
    assert option(argv, "--output").rstrip("/").endswith("/" + job_id), "one output per run id"
    assert manifest["spec"]["backoffLimit"] >= 1


def test_plain_cronjob_creates_the_same_rayjob_with_the_k8s_job_name_as_run_id():
    documents = {d["kind"]: d for d in load_all(KUBERAY / "cronjob-crawl.yaml")}
    cron = documents["CronJob"]["spec"]
    assert cron_valid(cron["schedule"]) and cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] <= 5 and cron["failedJobsHistoryLimit"] <= 5
    assert cron["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] > 0
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    run_id = next(e for e in pod["containers"][0]["env"] if e["name"] == "RUN_ID")
    assert run_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    rayjob = yaml.safe_load(documents["ConfigMap"]["data"]["rayjob.yaml"].replace("RUN_ID", "vipwatch-crawl-nightly-29420430"))
    validate_against_crd(rayjob)
    assert rayjob["metadata"]["name"] == "vipwatch-crawl-nightly-29420430"
    check_crawl_job(rayjob["spec"])
    assert option(crawl_argv(rayjob["spec"]["entrypoint"]), "--job-id") == rayjob["metadata"]["name"]
    single = load(KUBERAY / "rayjob-crawl.yaml")["spec"]
    assert rayjob["spec"]["rayClusterSpec"] == single["rayClusterSpec"]
    verbs = {v for rule in documents["Role"]["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "create", "patch"}, "the scheduler only creates RayJobs"


def test_cleanup_cronjob_deletes_only_finished_crawl_rayjobs():
    documents = {d["kind"]: d for d in load_all(KUBERAY / "cleanup-cronjob.yaml")}
    script = documents["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "kubectl delete rayjob" in script and "Complete|Failed" in script
    assert {v for rule in documents["Role"]["rules"] for v in rule["verbs"]} == {"get", "list", "delete"}
    assert all(rule["resources"] == ["rayjobs"] for rule in documents["Role"]["rules"])


# ---- KubeRay v1.7.0 CRD schemas ----------------------------------------------------------------
CRDS = SHARED_DIR / "k8s" / "kuberay-crds-v1.7.0"


def strict(schema):
    """The CRD's structural schema with unknown fields refused (the API server would prune them
    silently; `kubectl apply --validate=strict` refuses them)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@functools.lru_cache(maxsize=None)
def crd_validator(kind: str):
    import jsonschema

    for path in CRDS.glob("ray.io_*.yaml"):
        # The C loader: these CRDs are 13-25k lines each.
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if crd["spec"]["names"]["kind"] == kind:
            version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
            schema = strict(version["schema"]["openAPIV3Schema"])
            return jsonschema.Draft7Validator(schema)
    raise AssertionError(f"no CRD for {kind} in {CRDS}")


def validate_against_crd(document: dict) -> None:
    assert document["apiVersion"] == "ray.io/v1"
    errors = sorted(crd_validator(document["kind"]).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:10])


def ray_documents() -> list[tuple[str, dict]]:
    found = [(p.name, d) for p in sorted(KUBERAY.glob("*.yaml")) for d in load_all(p)
             if d.get("apiVersion", "").startswith("ray.io/")]
    assert {kind for _, kind in [(n, d["kind"]) for n, d in found]} == {"RayJob", "RayCronJob", "RayService"}
    return found


def test_every_kuberay_object_matches_the_v1_7_0_crd_schema():
    for name, document in ray_documents():
        validate_against_crd(document)


@pytest.mark.parametrize("kind, path, value, message", [
    ("RayCronJob", ["spec", "concurrencyPolicy"], "Forbid", "Additional properties"),
    ("RayCronJob", ["spec", "successfulJobsHistoryLimit"], 3, "Additional properties"),
    ("RayJob", ["spec", "rayClusterSpec", "authOptions", "mode"], "password", "is not one of"),
    ("RayJob", ["spec", "backoffLimit"], "two", "is not of type"),
    ("RayService", ["spec", "rayClusterConfig", "headGroupSpec", "rayStartParams", "num-gpus"], 0, "is not of type"),
])
def test_the_crd_check_refuses_fields_kuberay_does_not_have(kind, path, value, message):
    import copy

    document = copy.deepcopy(next(d for _, d in ray_documents() if d["kind"] == kind))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(AssertionError, match=message):
        validate_against_crd(document)


# ---- who can reach the cluster and what it can touch ---------------------------------------------
def test_network_policies_admit_only_the_operator_submitter_and_ingress():
    policies = {d["metadata"]["name"]: d["spec"] for d in load_all(KUBERAY / "networkpolicy.yaml")}
    for component in ("crawl", "serve"):
        spec = next(s for s in policies.values()
                    if s["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == component)
        assert spec["policyTypes"] == ["Ingress"]
        assert spec["podSelector"]["matchLabels"]["ray.io/is-ray-node"] == "yes"
        open_ports = set()
        for rule in spec["ingress"]:
            ports = {p["port"] for p in rule.get("ports", [])}
            for peer in rule["from"]:
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                if labels.get("app.kubernetes.io/component") == component and namespace is None:
                    continue  # the cluster's own Ray pods
                assert ports, f"{component}: a peer other than the cluster's pods may reach every port: {peer}"
                if labels.get("app.kubernetes.io/name") == "kuberay-operator" or labels.get("ray.io/originated-from-crd"):
                    assert ports <= {8265, 52365, 8000}
                else:
                    assert namespace == "ingress-nginx" and ports == {8000}, peer
                open_ports |= ports
        assert (8000 in open_ports) == (component == "serve")


def test_crawl_and_serve_have_their_own_least_privilege_roles():
    accounts = {d["metadata"]["name"]: d for d in load_all(KUBERAY / "serviceaccounts.yaml")}
    assert {"vipwatch-crawl", "vipwatch-serve"} <= set(accounts)
    assert len({a["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for a in accounts.values()}) == len(accounts)

    def grants(policy_file: str) -> dict[str, set[str]]:
        policy = json.loads((INFRA / "iam" / policy_file).read_text())
        by_bucket: dict[str, set[str]] = {}
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and "*" not in "".join(statement["Action"])
            for resource in statement["Resource"]:
                by_bucket.setdefault(resource.split(":::")[1].split("/")[0], set()).update(statement["Action"])
        return by_bucket

    crawl, serve = grants("crawl-policy.json"), grants("serve-policy.json")
    writes = {"s3:PutObject", "s3:DeleteObject"}
    assert not crawl["vipwatch-models"] & writes and not crawl["vipwatch-galleries"] & writes
    assert "s3:PutObject" in crawl["vipwatch-results"]
    assert "vipwatch-results" not in serve and "vipwatch-crawl" not in serve, "Serve never sees crawl data"
    assert not serve["vipwatch-models"] & writes and not serve["vipwatch-galleries"] & writes
    # Serve writes one thing: the active-gallery pointer, in its own bucket.
    assert {bucket for bucket, actions in serve.items() if actions & writes} == {"vipwatch-serve-state"}
    pointer = yaml.safe_load(load(KUBERAY / "rayservice.yaml")["spec"]["serveConfigV2"])["applications"][0]["args"]
    assert pointer["active_gallery_pointer"].startswith("s3://vipwatch-serve-state/")


def test_serve_yaml_names_every_artefact_and_bounds_every_request():
    from core.config import ServeConfig

    serve_config = load(INFRA / "serve.yaml")
    assert serve_config["http_options"]["host"] == "127.0.0.1"
    assert serve_config["http_options"]["request_timeout_s"] > 0
    for application in serve_config["applications"]:
        config = ServeConfig.model_validate(application["args"])
        check_deployable(config)
        check_serve_limits(config)
        assert "analyzer_actors" not in application["args"].get("resources", {}), \
            "a fixed replica count beside autoscaling does nothing"


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
        check_deployable(config)
        check_serve_limits(config)
        # The keys come from files of a Secret volume mounted on every pod of this cluster.
        for key_file in (config.api_key_file, config.admin_api_key_file):
            assert key_file, "the API keys must come from mounted Secret files"
            for group in [manifest["spec"]["rayClusterConfig"]["headGroupSpec"],
                          *manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"]]:
                assert any(key_file.startswith(m["mountPath"].rstrip("/") + "/") and secret_volume(group, m["name"])
                           for c in containers(group) for m in c.get("volumeMounts", [])), key_file
    assert serve_config["http_options"].get("request_timeout_s", 0) > 0
    check_cluster_spec(manifest["spec"]["rayClusterConfig"])
    check_pods(manifest["spec"]["rayClusterConfig"], "serve")
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
    # Token auth on every node, the token read from a mounted file, the job API on loopback only.
    run_options = " ".join(config["docker"]["run_options"])
    assert "--env RAY_AUTH_MODE=token" in run_options
    token_path = re.search(r"--env RAY_AUTH_TOKEN_PATH=(\S+)", run_options).group(1)
    assert re.search(rf"--volume \S+:{re.escape(token_path)}:ro", run_options), "the token file must be mounted"
    assert "RAY_AUTH_TOKEN=" not in yaml.safe_dump(config), "no token value in the config"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    images = {config["docker"]["image"]} | {load(KUBERAY / "rayjob-crawl.yaml")["spec"]["rayClusterSpec"]
                                             ["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]}
    assert len(images) == 1, f"cluster.yaml and the KubeRay manifests use different images: {images}"


def test_dockerfile_installs_the_locked_stack_before_the_code_and_no_test_tools():
    text = (INFRA / "Dockerfile").read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert sum(line.startswith("FROM ") for line in instructions) == 1
    assert "python3.11" in text
    copies = [line for line in instructions if line.startswith(("COPY", "ADD"))]
    for line in copies:
        # Weights and data are artefacts in object storage: nothing from ../shared, no model files.
        assert not re.search(r"shared|\.onnx|\.h5|\.dat|faces_aligned", line), line
    assert not any(line.startswith("ADD") for line in copies), "no downloads or archives at build time"
    # The dependency layer comes first and sees only the locks and the installer: a code edit
    # reuses it. The code comes after, in one COPY of the build context.
    code_copy = next(i for i, line in enumerate(instructions) if re.match(r"COPY (--chown=\S+ )?\. \.$", line))
    deps_run = next(i for i, line in enumerate(instructions) if "--deps-only" in line or
                    (line.startswith("RUN") and "--deps-only" in " ".join(instructions[i:i + 4])))
    assert deps_run < code_copy
    for line in copies[:copies.index(instructions[code_copy])]:
        assert re.search(r"pyproject\.toml|install\.sh|requirements(-gpu)?\.lock", line), line
        assert "requirements-test.lock" not in line
    assert "--production" in text and "infra/requirements-test.lock" in docker_ignored()
    assert {"tests", "docs", ".git", ".venv"} <= set(docker_ignored())


def test_defaults_that_name_no_uri_resolve_to_files_the_image_holds():
    """What a manifest leaves to a default must be in the image: the shipped fusion artefact
    (ForgeryConfig.fusion_model "shipped") and the impostor cohorts' default root."""
    from index.cohort import DEFAULT_ROOT
    from operators.forgery.fusion import shipped_fusion_dir

    files = [p for family in (None, "dlib") for p in shipped_fusion_dir(family).rglob("*") if p.is_file()]
    assert files and all(shipped_in_image(p) for p in files), files
    relative = DEFAULT_ROOT.relative_to(REPO_ROOT)
    assert not any(fnmatch.fnmatch(str(relative), pattern) or relative.parts[0] == pattern
                   for pattern in docker_ignored()), "the cohorts' default root must reach the image"
    # No runtime environment in a manifest points a lookup back at a development checkout.
    for path in sorted(KUBERAY.glob("*.yaml")):
        text = path.read_text()
        assert "../shared" not in text and "/work/" not in text and "VIPWATCH_SHARED" not in text, path.name
