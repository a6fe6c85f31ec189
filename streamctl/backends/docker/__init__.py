"""The Docker backend: containers, volumes and a network per cluster, through the Docker SDK."""
