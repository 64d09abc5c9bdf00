"""Galleries: enrolled identities, their face embeddings, the stores that keep them and the indexes that search them."""
