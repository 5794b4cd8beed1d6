"""The numpy runtime: what the Blender extension runs where torch is not installed.

Blender bundles numpy in every release (1.24 in 4.2 LTS to 2.x in 5.1 and later) and nothing else
this project needs, and torch has no Linux build for Blender's Python 3.13 that an extension could
carry. Everything here therefore runs on numpy alone and reads the same model file as the torch
path (:mod:`.torchfile`), so there is one model to ship and train:

- :mod:`.torchfile` reads a ``glvd-model/1`` file without torch;
- :mod:`.nn` holds the layers (convolution, group/batch norm, pooling, bilinear sampling);
- :mod:`.descent` is GLVD's encoders and descent (:class:`~.descent.NumpyGLVD`), matched to the
  torch model by tests.
"""
