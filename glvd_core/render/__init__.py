"""Rendering: a numpy z-buffer rasteriser."""
