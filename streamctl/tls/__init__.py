"""Verified TLS for the whole cluster: a CA of its own (or the user's) and a certificate per server."""
