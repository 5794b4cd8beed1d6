"""Which linear-algebra calls of the shape priors can a CUDA graph capture? (docs/PERFORMANCE.md)

Captures ``torch.linalg.svd`` and ``torch.linalg.det`` of 3x3 matrices and
``glvd_core.model.glvd.similarity_fit`` alone, under each of torch's CUDA linear-algebra back ends,
and prints "captured OK" or the error. Needs CUDA:

    python3 scripts/cuda_graph_linalg_probe.py      # on a GPU machine (scripts/bench_on_gpu.sh's python3)
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from glvd_core.model.glvd import similarity_fit  # noqa: E402


def main():
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    dev = "cuda"
    src = torch.randn(1, 18, 3, device=dev)
    dst = 1.1 * src + 0.01 * torch.randn(1, 18, 3, device=dev)
    ops = [("svd", lambda: torch.linalg.svd(src[0].T @ dst[0])[0]), ("det", lambda: torch.linalg.det(src[0, :3])),
           ("similarity_fit", lambda: similarity_fit(src, dst)[1])]
    for lib in ["default", "cusolver", "magma"]:
        torch.backends.cuda.preferred_linalg_library(lib)
        for name, fn in ops:
            try:
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    fn()  # warm-up outside the capture
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    fn()
                g.replay()
                torch.cuda.synchronize()
                print(lib, name, "captured OK")
            except Exception as e:  # report and go on: the point is the table
                print(lib, name, "FAILS:", type(e).__name__, str(e)[:120])
                torch.cuda.synchronize()


if __name__ == "__main__":
    main()
