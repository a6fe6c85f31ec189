"""The monitoring node: a Prometheus server scraping the gateway, with alert rules (prometheus.py)."""
