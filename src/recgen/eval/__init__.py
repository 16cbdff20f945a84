"""Evaluation harness: metrics and the full-ranking evaluator every model and task is measured with."""
