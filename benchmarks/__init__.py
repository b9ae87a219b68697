"""Benchmarks of the book's code, reported as ratios to PyTorch measured in the same run."""
