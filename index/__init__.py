"""Gallery artefact: FAISS index + embeddings + per-identity statistics + manifest."""
