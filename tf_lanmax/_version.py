"""The package version (one place, importable from any level without import cycles)."""

__version__ = "0.1.0"
