"""Arguments of a script run as ``blender -b --python X.py -- ARGS`` or ``python X.py ARGS``."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def script_args() -> list:
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:]
    try:
        import bpy

        if bpy.app.binary_path:  # a real Blender without "--": no script arguments
            return []
    except ImportError:
        pass
    return sys.argv[1:]


def use_checkout():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
