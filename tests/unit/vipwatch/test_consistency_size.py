"""The region-consistency size sweep: faces found again at small sizes, the own-face measure per
size on real held-out LFW people, and the job end to end at a tiny size."""
from __future__ import annotations

import json

import numpy as np

from core.config import SHARED_DIR
from operators.forgery.region_consistency import RegionConsistency, shipped_for
from vipwatch.evaluation import consistency_size
from vipwatch.evaluation.size_sweep import SourceFace
from vipwatch.evaluation.unseen_authentic import held_out_lfw_people

LFW = SHARED_DIR / "data" / "lfw" / "lfw-deepfunneled"


def test_sweep_finds_small_faces_again_and_measures_each_size(onnx_analyzer):
    pack = onnx_analyzer.pack
    people = sorted(held_out_lfw_people([])[0])[:16]
    faces = consistency_size.held_out_faces(pack, LFW, people)
    assert len(faces) >= 14 and all(f.iod > 30 for f in faces)
    crop = consistency_size.redetected_crop(pack, faces[0], 14)
    assert crop is not None and crop.shape == (112, 112, 3)
    # Eyes placed where no face is: the detector finds nothing there, so no crop is made.
    nowhere = SourceFace(faces[0].group, 0, faces[0].rgb, faces[0].landmarks - faces[0].landmarks[:2].mean(axis=0) + 2)
    assert consistency_size.redetected_crop(pack, nowhere, 14) is None
    heads = RegionConsistency.load(shipped_for(pack.embedder_id))
    rows = consistency_size.sweep(pack, heads, faces, targets=(12, 24), rounds=20)
    large = rows[1]
    assert large["faces"] + large["missed"] == len(faces) and large["faces"] >= len(faces) - 2
    # The heads tell a face's own two regions from two people's on these unseen people.
    assert large["own_face_auc"] > 0.9 and large["auc_95"][0] <= large["own_face_auc"] <= large["auc_95"][1]
    assert np.isclose(large["median_shift_spreads"], (heads.median - large["own_cosine_median"]) / heads.spread)
    assert "12" in consistency_size.format_table(rows).splitlines()[1]


def test_job_end_to_end_at_a_tiny_size(tmp_path, capsys):
    from jobs import consistency_size_sweep as job

    out = tmp_path / "sweep.json"
    result = job.main(["--model-pack", str(SHARED_DIR / "models"), "--detector-file", "scrfd_500m_kps.onnx",
                       "--embedder-file", "mobilefacenet_128.onnx", "--people", "6", "--bootstrap", "5",
                       "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["people"] == 6 and [r["inter_ocular_px"] for r in result["by_inter_ocular_px"]] == \
        list(consistency_size.IOD_TARGETS)
    assert result["heads"].startswith("region-consistency-mfn")
    assert "own face vs two people" in capsys.readouterr().out
