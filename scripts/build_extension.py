"""Build the installable Blender extension: one zip per platform, every dependency inside.

    python scripts/build_extension.py [--platform linux-x64|windows-x64|macos-arm64|all] [--out dist]

Each ``dist/glvd-<version>-<platform>.zip`` holds the add-on (glvd_blender/), the glvd_core
package with its assets (template, default model, MediaPipe's face models, licences) and, in
``wheels/``, the two modules Blender does not ship, for Blender's Python 3.11 (4.2 LTS to 5.0)
and 3.13 (5.1 to 5.3): OpenCV (one abi3 wheel serves both) and Pillow. No numpy (Blender's own
is used: glvd_core runs on numpy 1.24 to 2.x), no torch, no MediaPipe: the model and the face
models run in glvd_core's numpy runtime (docs/INSTALL.md says why).

Wheels come from the package registry at build time and are cached in ``.cache/wheels``; nothing
is fetched when the extension runs. ``--platform none`` builds the zip without wheels (for a
Blender pointed at a Python environment that has them, as the development tests do).
"""
import argparse
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "wheels"
# What the panel imports that Blender does not ship (glvd_blender.core.REQUIRED_MODULES), per
# Blender Python: 3.11 (4.2 LTS .. 5.0) and 3.13 (5.1 .. 5.3). OpenCV's abi3 wheel serves both.
# Pillow has one wheel per Python, and Blender 4.2 does not read a wheel's Python tag: of two
# wheels of one package it installs the newer version (of equal versions, the later file name,
# cp313). So the 3.11 wheel is the newer one; 5.0 and later pick by Python tag.
WHEELS = {
    "3.11": ("opencv-python-headless==4.11.0.86", "pillow==13.0.0"),
    "3.13": ("opencv-python-headless==4.11.0.86", "pillow==12.2.0"),
}
PYTHONS = tuple(WHEELS)
# Blender's platform names -> the wheel platform tags pip may take for them, newest first.
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_13_0_arm64", "macosx_12_0_arm64", "macosx_11_0_arm64"),
}


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


def fetch_wheels(platform: str) -> list[Path]:
    """The wheels of ``platform`` for every Python in PYTHONS, from the cache or the registry."""
    out = CACHE / platform
    out.mkdir(parents=True, exist_ok=True)
    tags = [a for t in PLATFORMS[platform] for a in ("--platform", t)]
    wheels = set()
    for py, reqs in WHEELS.items():
        for req in reqs:
            name, ver = req.split("==")

            def matching():
                return [w for w in out.glob(f"{name.replace('-', '_')}-{ver}-*.whl")
                        if "abi3" in w.name or f"-cp{py.replace('.', '')}-" in w.name]

            if not matching():
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--no-deps",
                                "--python-version", py, "--implementation", "cp", *tags, "-d", str(out), req],
                               check=True)
            if not matching():
                raise SystemExit(f"no {req} wheel for Python {py} on {platform}")
            wheels.update(matching())
    return sorted(wheels)


def stage(dst: Path, platform: str | None, wheels: list[Path]) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    shutil.copy(ROOT / "LICENSE", dst)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp*")
    shutil.copytree(ROOT / "glvd_blender", dst, ignore=skip, dirs_exist_ok=True)  # the extension's root
    shutil.copytree(ROOT / "glvd_core", dst / "glvd_core", ignore=skip)
    manifest = (ROOT / "blender_manifest.toml").read_text()
    if platform is not None:
        (dst / "wheels").mkdir()
        for w in wheels:
            shutil.copy(w, dst / "wheels" / w.name)
        listed = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
        keys = f'platforms = ["{platform}"]\nwheels = [\n{listed},\n]\n\n'
        at = manifest.index("\n[") + 1  # top-level keys go before the first table
        manifest = manifest[:at] + keys + manifest[at:]
    (dst / "blender_manifest.toml").write_text(manifest)
    return dst


def version() -> str:
    text = (ROOT / "blender_manifest.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


def build(out: Path, platform: str | None) -> Path:
    """Build one zip (``platform`` None: without wheels) and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    wheels = fetch_wheels(platform) if platform else []
    src = stage(out / f"staging-{platform or 'none'}", platform, wheels)
    zpath = out / (f"glvd-{version()}-{platform}.zip" if platform else f"glvd-{version()}.zip")
    if zpath.exists():
        zpath.unlink()
    tool = blender_ext_tool()
    if tool is not None:
        tags = tool.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
        valid = [f"--valid-tags={tags}"] if tags.is_file() else []
        subprocess.run([sys.executable, str(tool), "validate", str(src)] + valid, check=True)
        subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(src), "--output-filepath", str(zpath)]
                       + valid, check=True, stdout=subprocess.DEVNULL)
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
    ap.add_argument("--platform", default="all", choices=[*PLATFORMS, "all", "none"])
    ap.add_argument("--out", default=str(ROOT / "dist"))
    a = ap.parse_args()
    targets = list(PLATFORMS) if a.platform == "all" else [None] if a.platform == "none" else [a.platform]
    for p in targets:
        build(Path(a.out), p)
