"""High availability (#27): Patroni runs each Citus group's members and etcd keeps their leader keys.

This package is what streamctl knows about them, one home for every backend: the layout is the topology's
(`config/members.py`); `secrets.py` the passwords only HA needs (0600); `patroni.py` a member's Patroni
configuration; `etcd.py` an etcd member's command line; `runtime.py` where the Patroni program comes from;
`rest.py` reading Patroni's REST API (members, roles, timelines, lag). The backends run the processes
(`backends/local/ha.py`); Patroni decides who leads, streamctl never promotes on its own.
"""
