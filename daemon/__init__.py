"""Shoebox: a self-hosted, private photo library daemon."""

__version__ = "0.1.0"
