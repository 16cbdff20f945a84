"""Shared numeric machinery (top-k, ranking)."""
