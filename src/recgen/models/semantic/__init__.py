"""Generative retrieval over semantic item IDs: TIGER and its item tokenizers (RQ-VAE, residual k-means,
collaborative codes, plain IDs)."""
