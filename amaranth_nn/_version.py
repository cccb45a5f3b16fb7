"""The version of amaranth-nn, written once: ``pyproject.toml`` reads it at build time."""

__version__ = "0.1.0"
