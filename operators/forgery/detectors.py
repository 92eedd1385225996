"""Artefact detectors from config strings "<kind>:<uri>", so any number plug into the scorer."""
from __future__ import annotations

import importlib

# kind -> (module, class); each class takes the artefact URI and follows forgery/base.py.
KINDS = {
    "mesonet": ("operators.forgery.mesonet", "MesoNetDetector"),
    "sbi": ("operators.forgery.sbi_detector", "SBIDetector"),
}


def parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, uri = spec.partition(":")
    if not sep or kind not in KINDS or not uri:
        raise ValueError(f"artefact detector {spec!r}: expected '<kind>:<uri>' with kind in {sorted(KINDS)}")
    return kind, uri


def load_detectors(specs: list[str]) -> list:
    detectors = []
    for spec in specs:
        kind, uri = parse_spec(spec)
        module, cls = KINDS[kind]
        detectors.append(getattr(importlib.import_module(module), cls)(uri))
    names = [d.name for d in detectors]
    if len(set(names)) != len(names):
        raise ValueError(f"two artefact detectors share a signal name: {names}")
    return detectors
