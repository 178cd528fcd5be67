"""Deterministic synthetic datasets in the official layouts, for tests, benchmarks and the demo.

The library never imports this package."""
