"""Build the installable Blender extension zip (glvd_core bundled inside).

    python scripts/build_extension.py [--out dist]

The staging folder holds blender_manifest.toml, the add-on modules of glvd_blender/, the
glvd_core package (with its assets: template, default model, ICT licence) and LICENSE. It is
validated and zipped by Blender's own extension tool (shipped in the bpy wheel) when present.
"""
import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def blender_ext_tool():
    try:
        import bpy  # noqa: F401  (only to locate the wheel; not needed otherwise)
    except ImportError:
        return None
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    base = Path(spec.origin).parent
    hits = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return hits[-1] if hits else None


def stage(dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    shutil.copy(ROOT / "blender_manifest.toml", dst)
    shutil.copy(ROOT / "LICENSE", dst)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp*")
    shutil.copytree(ROOT / "glvd_blender", dst, ignore=skip, dirs_exist_ok=True)  # the extension's root
    shutil.copytree(ROOT / "glvd_core", dst / "glvd_core", ignore=skip)
    return dst


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    src = stage(out / "staging")
    version = next(l.split("=")[1].strip().strip('"') for l in (ROOT / "blender_manifest.toml").read_text().splitlines()
                   if l.startswith("version"))
    zpath = out / f"glvd-{version}.zip"
    tool = blender_ext_tool()
    if tool is not None:
        tags = tool.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
        valid = [f"--valid-tags={tags}"] if tags.is_file() else []
        subprocess.run([sys.executable, str(tool), "validate", str(src)] + valid, check=True)
        if zpath.exists():
            zpath.unlink()
        subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(src), "--output-filepath", str(zpath)]
                       + valid, check=True)
    else:  # plain zip with the same layout
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(src.rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(src))
    shutil.rmtree(src)
    print(f"built {zpath} ({zpath.stat().st_size / 1e6:.1f} MB)")
    return zpath


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "dist"))
    build(Path(ap.parse_args().out))
