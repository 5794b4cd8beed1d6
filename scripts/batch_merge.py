"""Merge the chunk reports of a batch split by ``batch.py --chunk K/N`` into one report.json.

    blender -b --python-exit-code 1 --python scripts/batch_merge.py -- --output DIR --chunks N
    python scripts/batch_merge.py --output DIR --chunks N

Reads DIR/report.chunk-K-of-N.json for K = 1..N and writes DIR/report.json (the results in
chunk order, as one batch.py run over all inputs would list them; the peak memory is the
largest chunk's). A missing or unreadable chunk report is named and the exit code is 2 (its
chunk did not finish: run it again); otherwise the exit code is 1 if any input failed.
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blender_args import script_args  # noqa: E402
from batch import report_name, write_report  # noqa: E402


def merge(out: Path, n: int) -> dict:
    """The merged report of chunks 1..n in ``out``; FileNotFoundError/ValueError naming a
    missing or unreadable chunk report."""
    chunks = []
    for k in range(1, n + 1):
        p = out / report_name(f"{k}/{n}")
        try:
            chunks.append(json.loads(p.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: no report (chunk {k} of {n} has not run or not finished)") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"{p}: cannot read it ({e})") from None
    peaks = [c.get("peak_rss_mb") for c in chunks if c.get("peak_rss_mb")]
    return dict(command=sys.argv, formats=chunks[0].get("formats"), chunks=n,
                results=[e for c in chunks for e in c.get("results", [])],
                peak_rss_mb=max(peaks) if peaks else None)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """All or nothing, like glvd_core.io's (which this script does not import: it runs in any
    Blender, with or without the extension's OpenCV)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv) -> int:
    ap = argparse.ArgumentParser(prog="batch_merge.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", required=True, help="the batch's output folder (where the chunk reports are)")
    ap.add_argument("--chunks", type=int, required=True, help="N, the number of chunks of the batch")
    a = ap.parse_args(argv)
    if a.chunks < 1:
        ap.error(f"--chunks {a.chunks}: choose 1 or more")
    out = Path(a.output)
    try:
        report = merge(out, a.chunks)
    except (FileNotFoundError, ValueError) as e:
        print(f"batch_merge.py: error: {e}", file=sys.stderr)
        return 2
    if not write_report(out, report, atomic_write_bytes):
        return 2
    failed = [e["name"] for e in report["results"] if e.get("status") == "error"]
    print(f"{len(report['results']) - len(failed)} of {len(report['results'])} inputs done in {a.chunks} chunk(s); "
          f"report: {out / 'report.json'}" + (f"; failed: {', '.join(failed[:5])}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    rc = main(script_args())
    if rc:
        sys.exit(rc)
