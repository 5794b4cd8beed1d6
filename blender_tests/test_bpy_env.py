"""The Blender side of the seam: glvd_core data becomes Blender mesh data."""
import bpy
import numpy as np

from glvd_core import load_template


def test_template_becomes_a_blender_mesh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    t = load_template()
    me = bpy.data.meshes.new("GLVD Face")
    me.vertices.add(t.num_vertices)
    me.vertices.foreach_set("co", t.vertices_m.ravel())
    me.loops.add(3 * t.num_faces)
    me.loops.foreach_set("vertex_index", t.faces.ravel())
    me.polygons.add(t.num_faces)
    me.polygons.foreach_set("loop_start", np.arange(0, 3 * t.num_faces, 3))
    me.update(calc_edges=True)
    assert me.validate() is False, "Blender found nothing to fix in the template mesh"
    assert (len(me.vertices), len(me.polygons)) == (7225, 14342)
    co = np.empty(3 * t.num_vertices, np.float32)
    me.vertices.foreach_get("co", co)
    np.testing.assert_array_equal(co.reshape(-1, 3), t.vertices_m)
