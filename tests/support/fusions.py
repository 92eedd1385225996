"""Shipped fusions that tests pin when they are about identity-signal mechanics rather than the
current default (which, since session 29, brings SBI and region consistency on both packs)."""
from operators.forgery.fusion import ARTEFACTS_DIR

# The ONNX default until session 29: identity signals only, candidate rate 0.10, no detector.
ONNX_IDENTITY_ONLY = str(ARTEFACTS_DIR / "fusion-lr-3d8ba041")
