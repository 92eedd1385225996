"""Training of the project's own models (Ray Train)."""
