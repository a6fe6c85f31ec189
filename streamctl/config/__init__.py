"""Topology configuration: typed models and the loader that validates them before any side effect."""

from streamctl.config.load import load_topology, parse_topology
from streamctl.config.model import Engine, Node, Role, Topology

__all__ = ["Engine", "Node", "Role", "Topology", "load_topology", "parse_topology"]
