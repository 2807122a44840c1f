"""Controllable image generation and translation with disentangled representations."""

__version__ = "0.1.0"
