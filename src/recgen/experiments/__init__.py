"""Experiments: the bench runner, results files (write, merge, read), reports and plots, and the studies."""
