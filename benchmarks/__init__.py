"""Benchmarks for the budgets of docs/architecture.md §8 (`make bench`); not part of the tests."""
