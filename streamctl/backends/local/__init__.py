"""The local backend: nodes as processes of this machine, under the state directory."""
