"""GPU selection logic, checked on a machine without a GPU: onnxruntime providers, `num_gpus` on
the analyzer actors, and where the FAISS index searches. On a GPU node (onnxruntime-gpu,
faiss-gpu) the same tests check the GPU branch instead."""
from __future__ import annotations

import numpy as np
import pytest

from operators.packs.device import CPU, CUDA, available_providers, select_providers, uses_gpu
from tests.support.shared_data import MODELS, ONNX_PACK
from core.config import CrawlConfig, RayResources

HAS_CUDA = CUDA in available_providers()


@pytest.mark.parametrize("device, available, expected", [
    ("auto", [CUDA, CPU], [CUDA, CPU]),
    ("auto", [CPU], [CPU]),
    ("auto", ["TensorrtExecutionProvider", CUDA, CPU], [CUDA, CPU]),
    ("cpu", [CUDA, CPU], [CPU]),
    ("cuda", [CUDA, CPU], [CUDA, CPU]),
])
def test_select_providers(device, available, expected):
    providers = select_providers(device, available)
    assert providers == expected
    assert uses_gpu(providers) is (providers[0] == CUDA)


def test_forcing_cuda_without_it_is_an_error_that_says_what_to_install():
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        select_providers("cuda", [CPU])


def test_this_machines_onnxruntime_decides_auto():
    assert select_providers("auto") == ([CUDA, CPU] if HAS_CUDA else [CPU])


def test_onnx_pack_runs_on_the_selected_provider():
    from operators.packs.onnx_pack import OnnxPack

    pack = OnnxPack(str(MODELS), detector_file=ONNX_PACK.detector_file, embedder_file=ONNX_PACK.embedder_file,
                    device="auto")
    assert pack.providers[0] == (CUDA if HAS_CUDA else CPU)
    assert pack.ctx_id == (0 if HAS_CUDA else -1)
    # The sessions really got those providers (insightface passes them to onnxruntime).
    assert pack.recogniser.session.get_providers()[0] == pack.providers[0]
    if not HAS_CUDA:
        with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
            OnnxPack(str(MODELS), detector_file=ONNX_PACK.detector_file, embedder_file=ONNX_PACK.embedder_file,
                     device="cuda")


def stages_by_name(resources: RayResources, cluster_cpus: float = 2.0) -> dict:
    from operators.stages import face_stages

    config = CrawlConfig(input="in", gallery="g", output="out", resources=resources)
    return {stage.name: stage for stage in face_stages(config, cluster_cpus)}


@pytest.mark.parametrize("gpus", [0.0, 0.5, 1.0])
def test_analyzer_actors_ask_for_the_gpus_configured(gpus):
    stages = stages_by_name(RayResources(analyzer_actors=2, analyzer_num_gpus=gpus))
    assert stages["analyze"].num_gpus == gpus
    assert stages["analyze"].actors == 2
    # Only the analyzer asks for a GPU; the other stages ask for none of their own (fused, they
    # run inside the analyzer's actor and so on its node).
    assert all(stage.num_gpus == 0 for name, stage in stages.items() if name != "analyze")


def test_crawl_command_line_reaches_the_actor_spec():
    from jobs.crawl import parse_config

    config, _ = parse_config(["--input", "s3://b/in/", "--gallery", "s3://b/g", "--output", "s3://b/out",
                              "--actors", "4", "--actor-gpus", "1", "--device", "cuda"])
    from operators.stages import face_stages

    analyze = face_stages(config, cluster_cpus=16)[0]
    assert (analyze.num_gpus, analyze.actors) == (1.0, 4)
    assert analyze.kwargs["model"].device == "cuda"


def test_analyzer_cpus_leave_room_for_read_and_decode_tasks():
    resources = RayResources(analyzer_actors=2, analyzer_num_cpus=1.0)
    stages = stages_by_name(resources, cluster_cpus=2.0)
    tasks = resources.read_num_cpus + resources.decode_num_cpus * resources.decode_actors + resources.write_num_cpus
    reserved = stages["analyze"].num_cpus * stages["analyze"].actors + stages["match"].num_cpus
    assert reserved + tasks <= 2.0


def small_index():
    from index import faiss_index

    vectors = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return faiss_index.build_index(vectors, np.arange(64)), vectors


def test_faiss_search_device_follows_the_build():
    import faiss

    from index import faiss_index

    index, vectors = small_index()
    searched = faiss_index.to_search_device(index)
    if faiss_index.gpu_count() == 0:
        assert searched is index, "without a GPU the CPU index is searched as it is"
    else:
        assert searched is not index and "Gpu" in type(searched).__name__
    _, ids = searched.search(vectors[:4], 1)
    assert ids[:, 0].tolist() == [0, 1, 2, 3]
    if not hasattr(faiss, "StandardGpuResources"):
        with pytest.raises(RuntimeError, match="faiss-gpu"):
            faiss_index.to_search_device(index, use_gpu=True)


def test_faiss_cpu_only_when_told():
    from index import faiss_index

    index, _ = small_index()
    assert faiss_index.to_search_device(index, use_gpu=False) is index


# ---- the provider a session really runs on ------------------------------------------------------
def test_a_session_that_fell_back_to_cpu_is_refused_when_cuda_is_demanded(monkeypatch, caplog):
    """The real recogniser session of the ONNX pack, as onnxruntime made it: on this machine it
    runs on CPU, which is what a CUDA session looks like after the CUDA libraries failed to load."""
    from operators.packs.device import check_session_device
    from operators.packs.onnx_pack import OnnxPack

    pack = OnnxPack(str(MODELS), detector_file=ONNX_PACK.detector_file, embedder_file=ONNX_PACK.embedder_file,
                    device="cpu")
    active = pack.recogniser.session.get_providers()
    assert active[0] == CPU
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider was requested but the session runs on"):
        check_session_device(active, [CUDA, CPU], "cuda", "recogniser")
    # Preferred only (auto) on a process with no GPU: CPU, with a warning.
    assert check_session_device(active, [CUDA, CPU], "auto", "recogniser") == active
    assert "running on CPU" in caplog.text
    # A Ray actor holding a GPU (CUDA_VISIBLE_DEVICES set) must not fall back quietly either.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(RuntimeError, match="did not load"):
        check_session_device(active, [CUDA, CPU], "auto", "recogniser")
    # CPU asked, CPU got: nothing to refuse.
    assert check_session_device(active, [CPU], "cpu", "recogniser") == active


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only torch path")
def test_torch_detectors_refuse_a_gpu_they_cannot_use(monkeypatch):
    from operators.forgery.torch_device import select_device

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert select_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="torch sees no GPU"):
        select_device("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(RuntimeError, match="a GPU is assigned to this process"):
        select_device("auto")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")   # Ray's value for an actor without GPUs
    assert select_device("auto").type == "cpu"
