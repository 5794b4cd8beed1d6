"""The numpy runtime: what the Blender extension runs where torch is not installed.

Blender bundles numpy in every release (1.24 in 4.2 LTS to 2.x in 5.1 and later) and nothing else
this project needs; torch has no Linux build for Blender's Python 3.13 that an extension could
carry, and MediaPipe none with its face mesh. Everything here therefore runs on numpy alone and
reads the same model file as the torch path (:mod:`.torchfile`), so there is one model to ship
and train (docs/INSTALL.md):

- :mod:`.torchfile` reads a ``glvd-model/1`` file without torch;
- :mod:`.nn` holds the layers (convolution, group/batch norm, pooling, bilinear sampling);
- :mod:`.descent` is GLVD's encoders and descent (:class:`~.descent.NumpyGLVD`), matched to the
  torch model by tests;
- :mod:`.tflite` runs MediaPipe's face models (:mod:`glvd_core.preprocess.face_mesh` is the graph
  around them), so face detection needs no MediaPipe either.
"""
