"""Pixel tools the forgery benchmark's manipulation families are made of: dlib 68-point
landmarks, landmark masks, colour transfers, blenders and web laundering.

Every tool works on whole RGB photos in photo coordinates, so a manipulated face keeps its real
context (hair, background, other people) and reaches the crawl's detector like any crawled photo.
"""
from __future__ import annotations

import cv2
import numpy as np

from operators.forgery.face_swap import reinhard_transfer
from operators.packs.dlib_pack import dlib_model_dir

# dlib 68-point layout (iBUG 300-W).
JAW = list(range(0, 17))
BROWS = list(range(17, 27))
INNER = list(range(17, 68))  # brows, nose, eyes, mouth: the usual deepfake swap region
COLOURS = ("reinhard", "histogram")
BLENDERS = ("feather", "poisson", "laplacian")


class Landmarker68:
    """dlib's 68-point shape predictor on a face box found by any detector."""

    def __init__(self):
        import dlib  # heavy optional dependency, loaded once per landmarker

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(dlib_model_dir() / "shape_predictor_68_face_landmarks.dat"))

    def __call__(self, rgb: np.ndarray, bbox) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in bbox[:4])
        shape = self._predictor(np.ascontiguousarray(rgb), self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 {0, 255} filled convex hull of points."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    return mask


def inner_hull(landmarks: np.ndarray, shape, grow: float = 0.0) -> np.ndarray:
    """Brows, eyes, nose and mouth hull, grown about its centre by ``grow`` (share of its size)."""
    points = landmarks[INNER]
    centre = points.mean(axis=0)
    return hull_mask(centre + (points - centre) * (1.0 + grow), shape)


def whole_face_hull(landmarks: np.ndarray, shape, forehead: float = 0.25) -> np.ndarray:
    """Jaw line plus the brows raised by ``forehead`` x face height: the whole face with forehead."""
    height = landmarks[8, 1] - landmarks[BROWS, 1].min()
    raised = landmarks[BROWS] - np.array([0.0, forehead * height], np.float32)
    return hull_mask(np.concatenate([landmarks[JAW], raised]), shape)


def histogram_match(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel CDF matching of the source's pixels inside the mask to the target's."""
    inside = mask > 0
    out = source.copy()
    for c in range(3):
        s_values, s_counts = np.unique(source[..., c][inside], return_counts=True)
        t_values, t_counts = np.unique(target[..., c][inside], return_counts=True)
        s_cdf = np.cumsum(s_counts) / s_counts.sum()
        t_cdf = np.cumsum(t_counts) / t_counts.sum()
        lut = np.interp(np.arange(256), s_values, np.interp(s_cdf, t_cdf, t_values))
        out[..., c] = np.clip(lut[source[..., c]], 0, 255).astype(np.uint8)
    return out


def colour_transfer(kind: str, source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if kind == "reinhard":
        return reinhard_transfer(source, target, mask)
    if kind == "histogram":
        return histogram_match(source, target, mask)
    if kind == "none":
        return source
    raise ValueError(f"unknown colour transfer {kind!r}")


def feather_alpha(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Mask eroded by ~2 sigma then blurred: the blend never leaves the mask."""
    k = max(1, int(round(2 * sigma)))
    eroded = cv2.erode(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    alpha = cv2.GaussianBlur(eroded.astype(np.float32) / 255.0, (0, 0), max(sigma, 0.5))
    alpha[mask == 0] = 0.0
    return alpha[..., None]


def alpha_blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    alpha = feather_alpha(mask, sigma)
    return np.clip(alpha * source + (1.0 - alpha) * target, 0, 255).astype(np.uint8)


def poisson_blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """cv2.seamlessClone of the masked source at its own position (both in photo coordinates)."""
    mask = mask.copy()
    mask[:2, :] = mask[-2:, :] = 0
    mask[:, :2] = mask[:, -2:] = 0
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return target.copy()
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    # seamlessClone centres the mask's bounding box at ``centre``: crop source and mask to it.
    centre = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
    src = np.ascontiguousarray(source[y0:y1 + 1, x0:x1 + 1])
    sub = np.ascontiguousarray(mask[y0:y1 + 1, x0:x1 + 1])
    out = cv2.seamlessClone(cv2.cvtColor(src, cv2.COLOR_RGB2BGR), cv2.cvtColor(target, cv2.COLOR_RGB2BGR), sub,
                            centre, cv2.NORMAL_CLONE)
    out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    # seamlessClone only solves inside the mask; keep every other pixel exactly the target's.
    dilated = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0
    return np.where(dilated[..., None], out, target)


def laplacian_blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray, levels: int = 4) -> np.ndarray:
    """Burt & Adelson multiband blend; outside the (slightly grown) mask the target is kept."""
    height, width = target.shape[:2]
    unit = 2 ** levels
    pad_h, pad_w = (-height) % unit, (-width) % unit

    def padded(image):
        return cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT).astype(np.float32)

    alpha = padded(cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.0))
    g_alpha, lap_s, lap_t = [alpha], [], []
    s, t = padded(source), padded(target)
    for _ in range(levels):
        s_down, t_down = cv2.pyrDown(s), cv2.pyrDown(t)
        lap_s.append(s - cv2.pyrUp(s_down, dstsize=s.shape[1::-1]))
        lap_t.append(t - cv2.pyrUp(t_down, dstsize=t.shape[1::-1]))
        g_alpha.append(cv2.pyrDown(g_alpha[-1]))
        s, t = s_down, t_down
    out = g_alpha[-1][..., None] * s + (1 - g_alpha[-1][..., None]) * t
    for level in range(levels - 1, -1, -1):
        a = g_alpha[level][..., None]
        out = cv2.pyrUp(out, dstsize=lap_s[level].shape[1::-1]) + a * lap_s[level] + (1 - a) * lap_t[level]
    out = np.clip(out[:height, :width], 0, 255).astype(np.uint8)
    # The coarse levels spread a little beyond the mask: bound the change to a margin around it.
    margin = cv2.dilate(mask, np.ones((2 * unit + 1, 2 * unit + 1), np.uint8)) > 0
    return np.where(margin[..., None], out, target)


def blend(kind: str, source: np.ndarray, target: np.ndarray, mask: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    if kind == "feather":
        return alpha_blend(source, target, mask, sigma)
    if kind == "poisson":
        return poisson_blend(source, target, mask)
    if kind == "laplacian":
        return laplacian_blend(source, target, mask)
    raise ValueError(f"unknown blender {kind!r}; expected one of {BLENDERS}")


def changed_region(mask: np.ndarray, kind: str) -> np.ndarray:
    """Pixels a blend of ``kind`` over ``mask`` may change (the rest is the target's, exactly)."""
    grow = {"feather": 1, "poisson": 3, "laplacian": 2 * 2 ** 4 + 1}.get(kind, 1)
    return cv2.dilate(mask, np.ones((grow, grow), np.uint8)) > 0


# ---- laundering: what the web does to an image between the forger and the crawl ----------------
JPEG_QUALITIES = (95, 85, 75, 60)
SCALES = (1.0, 1.0, 0.7, 0.5, 0.35)


def launder(rgb: np.ndarray, rng: np.random.Generator) -> tuple[bytes, dict]:
    """Resize down (and, half the time, back up) then JPEG-encode at a web quality. Applied with
    the same distribution to authentic and manipulated photos, so laundering is no label cue."""
    scale = float(SCALES[rng.integers(len(SCALES))])
    up = bool(scale < 1.0 and rng.random() < 0.5)
    quality = int(JPEG_QUALITIES[rng.integers(len(JPEG_QUALITIES))])
    height, width = rgb.shape[:2]
    out = rgb
    if scale < 1.0:
        out = cv2.resize(out, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA)
        if up:
            out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    # Face geometry recorded by the generator is in the unlaundered photo; this maps it.
    factor = 1.0 if (scale == 1.0 or up) else out.shape[1] / width
    return encoded.tobytes(), {"scale": scale, "up": up, "jpeg_quality": quality, "geometry_factor": factor}
