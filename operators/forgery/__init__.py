"""Forgery signals: identity-agnostic artefact detectors and the identity-aware signal."""
