"""The matcher's face-size gate: a face too small for the calibrated threshold keeps its score
and candidates but gets no identity_id."""
from __future__ import annotations

import io

import pandas as pd
from PIL import Image

from core.config import MatchConfig
from index.gallery import Gallery
from operators.decode import ImageDecoder
from operators.forgery.quality import inter_ocular_px
from operators.matcher import GalleryMatcher
from tests.support.shared_data import FACES_ALIGNED


def _rows(analyzer, images: dict[str, bytes]):
    batch = pd.DataFrame({"path": list(images), "bytes": list(images.values())})
    return analyzer(ImageDecoder()(batch))


def test_small_faces_keep_their_score_but_get_no_identity(onnx_gallery, onnx_aligned_analyzer):
    crop_path = FACES_ALIGNED / "barack_obama" / "010.png"  # not one of the 10 enrolled crops
    full = crop_path.read_bytes()
    small = io.BytesIO()
    Image.open(crop_path).convert("RGB").resize((40, 40), Image.Resampling.BOX).save(small, format="PNG")
    rows = _rows(onnx_aligned_analyzer, {"full.png": full, "small.png": small.getvalue()})
    eyes = [inter_ocular_px(points) for points in rows.column("landmarks").to_pylist()]
    # An aligned crop puts the eyes ~35 px apart at 112 px; at 40 px, ~12.6.
    assert eyes[0] > 30 and eyes[1] < 15

    gallery = Gallery.load(onnx_gallery)
    gated = GalleryMatcher(gallery=gallery)(rows).to_pylist()
    ungated = GalleryMatcher(gallery=gallery, match=MatchConfig(min_identify_eye_px=0))(rows).to_pylist()
    assert gated[0]["identity_id"] == "barack_obama" and gated[0]["match_score"] >= gated[0]["match_threshold"]
    # The small face: no identity whatever its score; score and candidates are those of the ungated matcher.
    assert gated[1]["identity_id"] is None
    assert gated[1]["match_score"] == ungated[1]["match_score"]
    assert gated[1]["candidates"] == ungated[1]["candidates"]
    # Without the gate the same small face is identified: the gate, not its score, removed the identity.
    assert ungated[1]["identity_id"] == "barack_obama" and ungated[1]["match_score"] >= ungated[1]["match_threshold"]
