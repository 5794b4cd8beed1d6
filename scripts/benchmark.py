"""Same as ``python -m glvd_core bench`` (see there)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from glvd_core.cli import main  # noqa: E402

sys.exit(main(["bench"] + sys.argv[1:]))
