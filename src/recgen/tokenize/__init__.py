"""Item tokenization: text encoders (and, next, ID / codebook / collaborative tokenizers)."""
