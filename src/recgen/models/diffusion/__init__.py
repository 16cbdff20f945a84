"""Diffusion recommenders (DiffRec, L-DiffRec, DreamRec) and their baseline MultVAE, on one Gaussian process."""
