"""Train GLVD from Blender or plain Python, with the arguments of ``python -m glvd_core train``:

    blender -b --python-exit-code 1 --python scripts/train.py -- --config lite --data DIR --out RUN [--resume]
    python scripts/train.py --config lite --data DIR --out RUN
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import script_args, use_checkout  # noqa: E402

use_checkout()
from glvd_core.cli import main  # noqa: E402

rc = main(["train"] + script_args())
if rc:
    sys.exit(rc)
