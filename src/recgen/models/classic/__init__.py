"""Classic recommenders: Pop, ItemKNN, EASE, BPR-MF (the baselines every generative model must beat)."""
