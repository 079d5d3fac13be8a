"""Benchmarks for the budgets of ARCHITECTURE §8 (`make bench`); not part of the test run."""
