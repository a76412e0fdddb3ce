"""Benchmarks that train, evaluate and write one table row: `sbcore bench SUITE` (suites registered by plugins
and the core's own `images`)."""
