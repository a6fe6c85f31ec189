"""Metrics: one bounded collection of the platform (collect.py) and its Prometheus families (families.py)."""
