"""One home per engine: what every backend and every client knows about PostgreSQL, Redis and MongoDB.

Each module holds its engine's server configuration (the text or arguments the backends render, TLS
included), its readiness probe, and its client URI or connection string, built from parts and quoted as
the engine itself reads them, so a secret with a space or a quote works everywhere. `tls.py` is where a
server finds its TLS files. These modules import nothing else from streamctl: the
backends, `context.py` and the services stand on them.
"""
