"""Training machinery shared by neural models."""
