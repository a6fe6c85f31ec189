"""streamctl: provision, seed, verify and serve a streaming platform's data layer."""

__version__ = "0.1.0"
