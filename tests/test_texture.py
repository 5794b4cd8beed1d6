"""Photo textures baked on the template UVs (glvd_core, no Blender)."""
import cv2
import numpy as np
import pytest

from glvd_core.io import read_obj
from glvd_core.render.raster import rasterize, vertex_normals
from glvd_core.texture import bake_texture, write_textured_obj
from glvd_core.texture.bake import FILLED, MIRRORED, SEEN, uv_to_texel


@pytest.fixture(scope="module")
def scene(tiny_dataset):
    from glvd_core.data import GLVDDataset

    return GLVDDataset(tiny_dataset)[0]


def visible_frontal_vertices(V, cam, template, min_cos=0.6):
    Vc = cam.world_to_camera(V)
    r = rasterize(Vc, template.faces, cam.K, cam.height, cam.width)
    xy = cam.project(V)
    xi, yi = np.rint(xy).astype(int).T
    ok = (xi >= 2) & (xi < cam.width - 2) & (yi >= 2) & (yi < cam.height - 2)
    d = np.full(len(V), -np.inf)
    d[ok] = r.depth[yi[ok], xi[ok]]
    n = vertex_normals(V, template.faces)
    to_cam = cam.center_world - V
    cos = (n * to_cam).sum(1) / np.linalg.norm(to_cam, axis=1)
    face = np.asarray(template.narrow_face_mask, bool)
    return ok & (Vc[:, 2] <= d + 1e-3) & (cos > min_cos) & face, xy


def test_texels_at_visible_vertices_have_the_photo_colour(scene, template):
    cam, img = scene.cameras[0], scene.images[0]
    tex = bake_texture(scene.vertices_m, [img], [cam], template, masks=[scene.masks[0]], size=512)
    vis, xy = visible_frontal_vertices(scene.vertices_m, cam, template)
    assert vis.sum() > 500
    t = np.rint(uv_to_texel(template.uvs[vis], 512)).astype(int)
    texel = tex.image[t[:, 1], t[:, 0]].astype(float)
    photo = cv2.remap(img.astype(np.float32), xy[vis, 0].astype(np.float32)[None], xy[vis, 1].astype(np.float32)[None],
                      cv2.INTER_LINEAR)[0]
    err = np.abs(texel - photo).max(1)
    assert np.median(err) < 8 and np.percentile(err, 90) < 25, (np.median(err), np.percentile(err, 90))
    assert (tex.source[t[:, 1], t[:, 0]] == SEEN).mean() > 0.95
    assert tex.view_gains.shape == (1, 3) and np.allclose(tex.view_gains, 1)


def test_unseen_side_is_mirrored_or_filled_and_every_texel_is_set(scene, template):
    tex = bake_texture(scene.vertices_m, scene.images[:1], scene.cameras[:1], template, size=256)
    inside = tex.source > 0
    assert set(np.unique(tex.source[inside])) <= {SEEN, MIRRORED, FILLED}
    assert tex.stats["seen"] + tex.stats["mirrored"] + tex.stats["filled"] == pytest.approx(1.0)
    assert tex.stats["mirrored"] + tex.stats["filled"] > 0.1  # one photo never sees the whole head
    assert tex.image[inside].mean() > 20  # holes are coloured, not black
    # skin tone: close to the photo's face colour
    assert np.abs(tex.skin_rgb - np.median(tex.image[tex.source == SEEN], 0)).max() < 60


def test_views_with_different_exposure_are_equalised(scene, template):
    imgs = [scene.images[0], np.clip(scene.images[1].astype(float) * 0.6, 0, 255).astype(np.uint8)]
    tex = bake_texture(scene.vertices_m, imgs, scene.cameras[:2], template, size=256)
    ratio = tex.view_gains[1] / tex.view_gains[0]
    np.testing.assert_allclose(ratio, 1 / 0.6, rtol=0.15)


def test_textured_obj_files(scene, template, tmp_path):
    tex = bake_texture(scene.vertices_m, scene.images[:1], scene.cameras[:1], template, size=128)
    obj, mtl, png = write_textured_obj(tmp_path / "face.obj", scene.vertices_m, template, tex)
    v, f = read_obj(obj)
    assert v.shape == (7225, 3) and f.shape == (14342, 3)
    assert "map_Kd face.png" in mtl.read_text() and obj.read_text().startswith("mtllib face.mtl")
    assert cv2.imread(str(png)).shape == (128, 128, 3)


def test_bad_inputs_are_clear_errors(scene, template):
    with pytest.raises(ValueError, match="camera expects"):
        bake_texture(scene.vertices_m, [scene.images[0][:100]], scene.cameras[:1], template)
    with pytest.raises(ValueError, match="size"):
        bake_texture(scene.vertices_m, scene.images[:1], scene.cameras[:1], template, size=16)
    with pytest.raises(ValueError, match="one camera per image"):
        bake_texture(scene.vertices_m, scene.images[:2], scene.cameras[:1], template)


def test_a_broken_mesh_bakes_in_bounded_time_and_memory(scene, template):
    """An untrained or failed reconstruction (vertices scattered in front of the camera) must not
    stall the add-on: huge triangles are not rasterised for visibility."""
    import time

    cam = scene.cameras[0]
    rng = np.random.default_rng(0)
    Vc = np.stack([rng.uniform(-0.3, 0.3, 7225), rng.uniform(-0.3, 0.3, 7225), rng.uniform(0.05, 0.6, 7225)], 1)
    V = (Vc - cam.t) @ cam.R  # camera frame -> world
    t0 = time.perf_counter()
    tex = bake_texture(V, scene.images[:1], [cam], template, size=256)
    assert time.perf_counter() - t0 < 30 and tex.image.shape == (256, 256, 3)
