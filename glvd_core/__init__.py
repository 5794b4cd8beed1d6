"""GLVD (Guided Learned Vertex Descent) face reconstruction — pure Python + torch, no bpy.

Public surface::

    from glvd_core import Reconstructor, Reconstruction, load_template

``Reconstructor`` and ``Reconstruction`` import torch on first use.
"""
from .template import Template, load_template

__version__ = "0.1.0"
__all__ = ["Reconstructor", "Reconstruction", "Template", "load_template", "__version__"]


def __getattr__(name):
    if name in ("Reconstructor", "Reconstruction"):
        from . import reconstruct

        return getattr(reconstruct, name)
    raise AttributeError(f"module 'glvd_core' has no attribute {name!r}")
