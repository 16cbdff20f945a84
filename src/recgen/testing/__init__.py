"""Test helpers that ship with the package: synthetic datasets and the Recommender conformance suite."""

from recgen.testing.synthetic import make_cluster_dataset, make_cycle_dataset, make_tiny_dataset

__all__ = ["make_cluster_dataset", "make_cycle_dataset", "make_tiny_dataset"]
