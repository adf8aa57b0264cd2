"""Benchmarks of the aggregator against a naive baseline (``make bench``; see ``run.py``)."""
