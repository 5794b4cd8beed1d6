"""GLVD (Guided Learned Vertex Descent) face reconstruction — pure Python + torch, no bpy.

Public surface::

    from glvd_core import load_template, Template
"""
from .template import Template, load_template

__version__ = "0.1.0"
__all__ = ["Template", "load_template", "__version__"]
