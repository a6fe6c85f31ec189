"""The Swarm backend: one service per node, pinned to its host, on the cluster's overlay network."""
