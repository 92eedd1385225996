"""The size / quality gate (issue 14 item 3): a face too small or too blurred for an artefact
detector gets no artefact signal and says why; a large sharp face is judged. A real photo through
the real analyzer (ONNX pack) and MesoNet."""
import cv2
import numpy as np
import pytest

from core.config import ForgeryConfig
from operators.decode import ImageDecoder
from operators.forgery.fusion import UNCALIBRATED
from operators.forgery.quality import inter_ocular_px
from operators.forgery.scorer import ForgeryScorer
from tests.support.shared_data import MODELS, PHOTOS
from vipwatch.enrol import embed_images

MESONET_DF = f"mesonet:{MODELS / 'mesonet' / 'Meso4_DF.h5'}"
PHOTO = PHOTOS / "face_recognition" / "obama.jpg"


@pytest.fixture(scope="module")
def scorer(onnx_analyzer):
    # The hand-made fallback scores any face an artefact detector judged (the shipped fusion has
    # no artefact head yet), so "judged" shows as a score.
    return ForgeryScorer(forgery=ForgeryConfig(detectors=[MESONET_DF], fusion_model=UNCALIBRATED),
                         pack=onnx_analyzer.pack)


def _score(scorer, analyzer, rgb, path):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    rows = [r for r in scorer(embed_images([str(path)], analyzer, ImageDecoder())).to_pylist() if r["status"] == "ok"]
    assert len(rows) == 1
    row = rows[0]
    return row, {s["name"]: s["value"] for s in row["forgery_signals"]}


def test_small_face_is_not_judged_and_large_one_is(scorer, onnx_analyzer, tmp_path):
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    large, signals = _score(scorer, onnx_analyzer, rgb, tmp_path / "large.png")
    native = inter_ocular_px(large["landmarks"])
    assert native > 1.5 * scorer.config.min_inter_ocular_px
    assert "artefact:mesonet_meso4_df" in signals and large["forgery_score"] is not None
    assert not any(reason.startswith("face too") for reason in large["reasons"])

    # The same photo as a thumbnail on a larger page: eyes well under the minimum apart.
    factor = 0.6 * scorer.config.min_inter_ocular_px / native
    thumb = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    page = np.full((480, 640, 3), 235, np.uint8)
    page[100:100 + thumb.shape[0], 200:200 + thumb.shape[1]] = thumb
    small, signals = _score(scorer, onnx_analyzer, page, tmp_path / "small.png")
    iod = inter_ocular_px(small["landmarks"])
    assert iod < scorer.config.min_inter_ocular_px
    assert f"face too small to judge: {iod:.0f} px between the eyes" in " ".join(small["reasons"])
    assert not any(name.startswith("artefact:") for name in signals)
    assert signals["quality:inter_ocular_px"] == pytest.approx(iod, abs=0.01)
    # Nothing else to judge it by (no gallery): no score, no verdict either way.
    assert small["forgery_score"] is None and small["verdict"] == "unverified"


def test_blurred_face_is_not_judged(scorer, onnx_analyzer, tmp_path):
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    blurred, signals = _score(scorer, onnx_analyzer, cv2.GaussianBlur(rgb, (0, 0), 6), tmp_path / "blurred.png")
    assert inter_ocular_px(blurred["landmarks"]) >= scorer.config.min_inter_ocular_px
    assert signals["quality:sharpness"] < scorer.config.min_sharpness
    assert any(reason.startswith("face too blurred to judge: sharpness") for reason in blurred["reasons"])
    assert not any(name.startswith("artefact:") for name in signals)
