"""Tests against real Blender (the ``bpy`` module from PyPI). User resources go to a temp dir
*before* bpy is imported, so tests never touch a user's Blender configuration."""
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="glvd-bl-user-"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bpy  # noqa: E402,F401
