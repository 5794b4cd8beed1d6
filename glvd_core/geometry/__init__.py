"""Geometry shared by inference, fitting, evaluation and training (numpy; torch ops in
:mod:`.tensor`): similarity fits, closest points on meshes, ICP."""

from .mesh import (align_mesh_to_points, closest_on_mesh, closest_point_on_triangles, face_normals, point_to_mesh,
                   similarity_from_step, similarity_step_columns)
from .similarity import umeyama

__all__ = ["umeyama", "align_mesh_to_points", "closest_on_mesh", "closest_point_on_triangles", "face_normals",
           "point_to_mesh", "similarity_from_step", "similarity_step_columns"]
