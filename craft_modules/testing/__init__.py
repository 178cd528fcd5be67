"""Test support: deterministic synthetic datasets in the official layouts (for tests,
benchmarks and the demo) and the repository's scripts imported as modules.

The library never imports this package."""
