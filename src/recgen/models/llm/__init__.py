"""LLM-based recommenders (zero-shot re-ranking, TALLRec, BIGRec) and their LoRA fine-tuning loops."""
