import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)


class GLVD_PG_photo(bpy.types.PropertyGroup):
    filepath: StringProperty(name="Photo", description="A reference photo of the face (JPEG, PNG, TIFF, BMP, WebP, GIF)",
                              subtype="FILE_PATH")
    mask: StringProperty(name="Mask", description="Optional head mask (white = head)", subtype="FILE_PATH")


class GLVD_PG_settings(bpy.types.PropertyGroup):
    photos: CollectionProperty(type=GLVD_PG_photo)
    active_photo: IntProperty(default=0)
    use_camera_backgrounds: BoolProperty(
        name="Use Selected Cameras",
        description="Use the background images of the selected cameras as the photos, with those cameras "
                    "(multi-view with your own calibrated cameras)", default=False)
    iterations: IntProperty(name="Iterations", description="Descent steps (0: the model's default)",
                            default=0, min=0, max=100)
    clip: FloatProperty(name="Clip", description="Largest move of a point per step (normalised units)",
                        default=0.1, min=0.001, max=1.0)
    seed: IntProperty(name="Seed", description="Seed of the keypoints' random start: the same seed and photos give "
                      "the same face", default=0, min=0)
    fov: FloatProperty(name="Field of View", description="Field of view of uncalibrated photos without EXIF "
                       "focal length, across the longer side", default=40.0, min=5.0, max=120.0)
    device: EnumProperty(name="Device", items=[("auto", "Auto", "CUDA when available"),
                                               ("cpu", "CPU", "The numpy runtime: no PyTorch needed, the quickest start"),
                                               ("cuda", "CUDA", "An NVIDIA GPU, through the PyTorch of the add-on's Python "
                                                "environment preference")],
                          description="Where the reconstruction runs", default="auto")
    model_path: StringProperty(name="Model", description="GLVD model file (empty: the bundled model)",
                               subtype="FILE_PATH", default="")
    fit_to_photos: BoolProperty(name="Fit to Photos", description="After the descent, fit the face to the evidence "
                                "in the photos (MediaPipe's 478 points, all views); its iterations are keyed after "
                                "the descent's as fit_01, fit_02, ...", default=False)
    fit_iterations: IntProperty(name="Fit Iterations", description="Iterations of the fit to the photos, each kept "
                                "as a shape key", default=10, min=1, max=100)
    fit_expression: BoolProperty(name="Fit Expression", description="The fit also reads the photo's expression "
                                 "(smile, open jaw) into the mesh; Neutral Expression removes it from the rest shape",
                                 default=False)
    add_keypoints: BoolProperty(name="Keypoint Empties", description="An empty per 3D keypoint that guides the "
                                "descent, keyed along it; move one and press Refit to hold it there", default=True)
    keyframe_descent: BoolProperty(name="Keyframe the Descent", description="Key each descent step's shape key in "
                                   "turn, so the timeline replays the descent", default=True)
    frames_per_step: IntProperty(name="Frames per Step", description="Frames between two keyed descent steps",
                                 default=5, min=1, max=100)
    add_cameras: BoolProperty(name="Photo Cameras", description="A camera per photo with the photo as background",
                              default=True)
    smooth_shading: BoolProperty(name="Smooth Shading", description="Shade the face smooth (off: flat)", default=True)
    set_scene: BoolProperty(name="Set Scene Camera & Frame Range",
                            description="Make the first photo's camera the scene camera with the photo's render size, "
                                        "and extend the frame range over the keyed steps (off: the scene's own settings "
                                        "are left as they are)", default=False)
    bake_texture: BoolProperty(name="Photo Texture", description="Bake the photos into a texture on the face's UVs "
                               "(packed into the .blend, with a material)", default=True)
    texture_size: EnumProperty(name="Texture Size", description="Width and height of the baked photo texture",
                               items=[("1024", "1K", "1024 × 1024 pixels"), ("2048", "2K", "2048 × 2048 pixels"),
                                      ("4096", "4K", "4096 × 4096 pixels")], default="2048")
    arkit_shapes: BoolProperty(name="ARKit Blendshapes", description="The 52 ARKit expression shape keys, fitted to "
                               "this face (for Live Link / Faceit style rigs)", default=True)
    neutral: BoolProperty(name="Neutral Expression", description="Remove the expression estimated on the photo from "
                          "the face's rest shape (identity kept)", default=False)
    export_format: EnumProperty(name="Format", description="File format of Export GLVD Face",
                                items=[("glb", "glTF Binary (.glb)", "One file: shape keys as morph targets, texture embedded"),
                                       ("gltf", "glTF (.gltf)", "A .gltf with its buffers and texture beside it"),
                                       ("fbx", "FBX (.fbx)", "Shape keys as blend shapes, texture embedded"),
                                       ("obj", "OBJ (.obj)", "The current shape only, with .mtl and texture PNG")],
                                default="glb")
    status: StringProperty(default="")


def settings(context: bpy.types.Context) -> GLVD_PG_settings:
    return context.scene.glvd


def register_pointer() -> None:
    bpy.types.Scene.glvd = PointerProperty(type=GLVD_PG_settings)


def unregister_pointer() -> None:
    if hasattr(bpy.types.Scene, "glvd"):
        del bpy.types.Scene.glvd
