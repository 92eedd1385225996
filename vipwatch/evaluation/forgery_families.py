"""The forgery benchmark's manipulation families. Each makes a face that should look like VIP X
(or X's own face, edited) inside a real photo, and says which pixels it may have changed.

- ``swap``: X's inner face (landmark hull of brows/eyes/nose/mouth, or the dense hull of all 68
  points) on a donor's head, Reinhard or histogram colour transfer, feather / Poisson / Laplacian
  pyramid blend;
- ``reenact``: an authentic photo of X with mouth, eyelids, mouth corners or brows moved by a
  piecewise-affine warp on dlib's 68 landmarks, blended back (X's identity is intact: only
  artefacts can tell);
- ``whole_face``: X's whole face, jaw line to forehead, over a donor's face;
- ``make_swaps``: the project's own generator (operators/forgery/face_swap.py: the scoring
  ellipse, Reinhard, Poisson or feather) run in the donor's aligned frame and put back.

X's pixels come from 112x112 ArcFace-template crops, placed on the donor by the inverse of the
donor's 5-point alignment, as face-swap tools do in their aligned frame.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from insightface.utils import face_align
from skimage.transform import PiecewiseAffineTransform, warp

from operators.forgery.face_swap import BLENDS as MAKE_SWAPS_BLENDS, swap_face
from core.schema import ALIGNED_SIZE
from vipwatch.evaluation import face_edits

FAMILIES = ("swap", "reenact", "whole_face", "make_swaps")


@dataclass
class FacePhoto:
    """A photo with one chosen face: box and 5 points from the pack's detector, dlib's 68."""
    rgb: np.ndarray
    bbox: np.ndarray
    kps5: np.ndarray
    lm68: np.ndarray

    @property
    def inter_ocular(self) -> float:
        return float(np.linalg.norm(self.kps5[1] - self.kps5[0]))


@dataclass
class Edit:
    rgb: np.ndarray
    changed: np.ndarray  # bool HxW: pixels the edit may have changed; all others are the input's
    recipe: dict = field(default_factory=dict)


def _alignment(kps5: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # scikit-image 0.26 deprecates SimilarityTransform.estimate, which face_align still calls.
        warnings.simplefilter("ignore", FutureWarning)
        return face_align.estimate_norm(np.asarray(kps5, np.float32).reshape(5, 2), ALIGNED_SIZE, mode="arcface")


def place_crop(crop: np.ndarray, donor: FacePhoto) -> tuple[np.ndarray, np.ndarray]:
    """X's template crop warped onto the donor photo's face, and where it has real pixels."""
    inverse = cv2.invertAffineTransform(_alignment(donor.kps5))
    height, width = donor.rgb.shape[:2]
    placed = cv2.warpAffine(crop, inverse, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    valid = cv2.warpAffine(np.full(crop.shape[:2], 255, np.uint8), inverse, (width, height), flags=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8))
    return placed, valid


def _paste(kind: str, colour: str, crop: np.ndarray, donor: FacePhoto, mask: np.ndarray, sigma: float) -> Edit:
    placed, valid = place_crop(crop, donor)
    mask = cv2.bitwise_and(mask, valid)
    corrected = face_edits.colour_transfer(colour, placed, donor.rgb, mask)
    out = face_edits.blend(kind, corrected, donor.rgb, mask, sigma)
    return Edit(out, face_edits.changed_region(mask, kind), {"blend": kind, "colour": colour})


def swap(crop: np.ndarray, donor: FacePhoto, rng: np.random.Generator) -> Edit:
    mask_kind = ("inner_hull", "dense_hull")[rng.integers(2)]
    if mask_kind == "inner_hull":
        mask = face_edits.inner_hull(donor.lm68, donor.rgb.shape, grow=float(rng.uniform(0.0, 0.15)))
    else:
        mask = face_edits.hull_mask(donor.lm68, donor.rgb.shape)
    colour = face_edits.COLOURS[rng.integers(len(face_edits.COLOURS))]
    kind = face_edits.BLENDERS[rng.integers(len(face_edits.BLENDERS))]
    edit = _paste(kind, colour, crop, donor, mask, sigma=max(1.5, 0.08 * donor.inter_ocular))
    edit.recipe["mask"] = mask_kind
    return edit


def whole_face(crop: np.ndarray, donor: FacePhoto, rng: np.random.Generator) -> Edit:
    mask = face_edits.whole_face_hull(donor.lm68, donor.rgb.shape, forehead=float(rng.uniform(0.15, 0.3)))
    colour = ("reinhard", "none")[rng.integers(2)]
    kind = ("laplacian", "feather")[rng.integers(2)]
    edit = _paste(kind, colour, crop, donor, mask, sigma=max(2.0, 0.15 * donor.inter_ocular))
    edit.recipe["mask"] = "whole_face_hull"
    return edit


def make_swaps_family(crop: np.ndarray, donor: FacePhoto, rng: np.random.Generator) -> Edit:
    matrix = _alignment(donor.kps5)
    donor_aligned = cv2.warpAffine(donor.rgb, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), borderMode=cv2.BORDER_REFLECT)
    blend = MAKE_SWAPS_BLENDS[rng.integers(len(MAKE_SWAPS_BLENDS))]
    swapped = swap_face(crop, donor_aligned, blend, rng)
    region = (np.abs(swapped.astype(np.int16) - donor_aligned.astype(np.int16)).max(axis=2) > 0).astype(np.uint8) * 255
    region = cv2.dilate(region, np.ones((3, 3), np.uint8))
    inverse = cv2.invertAffineTransform(matrix)
    height, width = donor.rgb.shape[:2]
    back = cv2.warpAffine(swapped, inverse, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(region, inverse, (width, height), flags=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.0)[..., None]
    alpha[mask[..., None] == 0] = 0.0
    out = np.clip(alpha * back + (1 - alpha) * donor.rgb, 0, 255).astype(np.uint8)
    return Edit(out, mask > 0, {"blend": blend, "colour": "reinhard", "mask": "jittered_scoring_ellipse"})


# ---- reenactment-like edit -------------------------------------------------------------------
MOUTH_LOWER = [55, 56, 57, 58, 59, 65, 66, 67]
MOUTH_CORNERS = {48: -1, 60: -1, 54: 1, 64: 1}
UPPER_LIDS = [37, 38, 43, 44]
EXPRESSIONS = ("open_mouth", "smile", "close_eyes", "raise_brows")


def expression_targets(lm68: np.ndarray, moves: list[str], rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Moved landmarks (jaw line fixed) and the magnitudes used, in inter-ocular units."""
    iod = float(np.linalg.norm(lm68[42:48].mean(0) - lm68[36:42].mean(0)))
    out = lm68.copy()
    amounts = {}
    for move in moves:
        a = float(rng.uniform(0.08, 0.2))
        amounts[move] = round(a, 3)
        if move == "open_mouth":
            out[MOUTH_LOWER, 1] += a * iod
        elif move == "smile":
            for point, side in MOUTH_CORNERS.items():
                out[point] += np.array([side * a * iod, -0.5 * a * iod], np.float32)
        elif move == "close_eyes":
            for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
                out[upper] += (lm68[lower] - lm68[upper]) * min(1.0, 3 * a)
        elif move == "raise_brows":
            out[face_edits.BROWS, 1] -= a * iod
    return out, amounts


def reenact(target: FacePhoto, rng: np.random.Generator) -> Edit:
    moves = list(rng.choice(EXPRESSIONS, size=int(rng.integers(2, 4)), replace=False))
    moved, amounts = expression_targets(target.lm68, moves, rng)
    # Fixed anchors: a ring around the whole face and the corners of a work window, so the warp
    # is the identity outside the face and the rest of the photo is untouched.
    face = face_edits.whole_face_hull(target.lm68, target.rgb.shape, forehead=0.3)
    ys, xs = np.nonzero(face)
    centre = np.array([xs.mean(), ys.mean()], np.float32)
    hull = cv2.convexHull(np.stack([xs, ys], 1).astype(np.int32))[:, 0, :].astype(np.float32)
    ring = centre + (hull - centre) * 1.15
    height, width = target.rgb.shape[:2]
    pad = 0.1 * max(xs.max() - xs.min(), ys.max() - ys.min())
    x0, y0 = max(0, int(min(ring[:, 0].min(), xs.min()) - pad)), max(0, int(min(ring[:, 1].min(), ys.min()) - pad))
    x1 = min(width, int(max(ring[:, 0].max(), xs.max()) + pad) + 1)
    y1 = min(height, int(max(ring[:, 1].max(), ys.max()) + pad) + 1)
    corners = np.array([[x0, y0], [x1 - 1, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], np.float32)
    ring = np.clip(ring, [x0, y0], [x1 - 1, y1 - 1])
    offset = np.array([x0, y0], np.float32)
    source = np.concatenate([target.lm68, ring, corners]) - offset
    destination = np.concatenate([moved, ring, corners]) - offset
    # warp() maps output coordinates to input ones: estimate destination -> source.
    transform = PiecewiseAffineTransform.from_estimate(destination, source)
    window = target.rgb[y0:y1, x0:x1]
    warped = (warp(window, transform, output_shape=window.shape[:2], order=1, mode="edge", preserve_range=True)
              .round().clip(0, 255).astype(np.uint8))
    warped_photo = target.rgb.copy()
    warped_photo[y0:y1, x0:x1] = warped
    mask = face_edits.hull_mask(ring, target.rgb.shape)
    kind = ("feather", "laplacian")[rng.integers(2)]
    out = face_edits.blend(kind, warped_photo, target.rgb, mask, sigma=max(1.5, 0.1 * target.inter_ocular))
    changed = face_edits.changed_region(mask, kind)
    return Edit(out, changed, {"moves": amounts, "blend": kind, "mask": "face_ring"})


def make_fake(family: str, rng: np.random.Generator, crop: np.ndarray | None = None,
              photo: FacePhoto | None = None) -> Edit:
    """``photo`` is the donor (swap families) or X's authentic photo (reenact); ``crop`` is X's
    aligned crop (swap families only)."""
    if family == "reenact":
        return reenact(photo, rng)
    makers = {"swap": swap, "whole_face": whole_face, "make_swaps": make_swaps_family}
    if family not in makers:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return makers[family](crop, photo, rng)
