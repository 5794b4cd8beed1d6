"""Photo textures on the template UVs: project the photos onto the reconstructed mesh and bake."""
from .bake import Texture, bake_texture, write_textured_obj

__all__ = ["Texture", "bake_texture", "write_textured_obj"]
