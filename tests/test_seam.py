import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_glvd_core_never_imports_bpy():
    offenders = [str(p) for p in (ROOT / "glvd_core").rglob("*.py") if "import bpy" in p.read_text()
                 or "from bpy" in p.read_text()]
    assert not offenders, offenders
    code = "import sys, glvd_core, glvd_core.data, glvd_core.cli; assert 'bpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
