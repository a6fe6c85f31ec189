"""Backups and point-in-time restore with pgBackRest: configuration and running it (`pgbackrest.py`),
archiving as `up` sets it (`archiving.py`), backup sets and their restore points (`catalog.py`,
`take.py`), and restoring a set into a new cluster (`restore.py`)."""
