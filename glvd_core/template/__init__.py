"""The fixed-topology GLVD template (7,225 vertices, 14,342 triangles)."""
from .template import Template, load_template, template_path

__all__ = ["Template", "load_template", "template_path"]
