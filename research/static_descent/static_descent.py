"""A static-shape inference path: encoders + the whole descent for a fixed batch, captured once
into a CUDA graph and replayed (no Python or kernel-launch overhead per step), optionally under
bf16/fp16 autocast. ``python -m research.static_descent.bench_variants --device cuda`` measures it
against the eager path, with the largest vertex difference; on a CPU (or with ``graph=False``)
the same static buffers run eagerly, which is what the tests check against :meth:`GLVD.descend`.
Not in the product: the bundled model's prior does not capture (NOTES.md).
"""
from __future__ import annotations

import torch

from glvd_core.model.glvd import GLVD


class StaticDescent:
    """Run ``model.encode`` and ``model.descend`` for inputs of one fixed shape.

    Args:
        model: a GLVD model on its device (evaluation mode; its last layers are frozen here for
            the life of this object: call :meth:`close` before training it again).
        batch, views: B scenes of V views each; images are ``cfg.arch.image_size`` squared.
        iterations, keypoint_warmup, clip: the descent (defaults: the model's config).
        graph: capture into a CUDA graph (CUDA only; ignored on a CPU).
        amp: None (float32), ``torch.bfloat16`` or ``torch.float16`` autocast.
        example: inputs (as for a call) for the warm-up runs before a capture — real cameras, so
            that the warm-up runs what the graph will (required when a graph is captured).

    Call with images (B, V, 3, S, S) in [0, 1], masks (B, V, 1, S, S), heatmaps (B, V, L, h, h),
    A (B, V, 3, 3), b (B, V, 3), K (B, V, 3, 3), the keypoint start (B, K, 3) and, for the
    ``"landmarks"`` / ``"image"`` prior, its identity weights ``shape_w`` (B, M) (None: the mean shape); returns the final
    vertices (B, N, 3) and keypoints (B, K, 3) in the normalised frame — with ``graph`` these are
    the graph's own output buffers, overwritten by the next call (clone them to keep them).
    """

    def __init__(self, model: GLVD, batch: int, views: int = 1, iterations: int | None = None,
                 keypoint_warmup: int | None = None, clip: float | None = None, graph: bool = True,
                 amp: torch.dtype | None = None, example: dict | None = None):
        cfg = model.cfg
        self.model, self.amp = model, amp
        self.iterations = cfg.inference.iterations if iterations is None else int(iterations)
        self.warmup = cfg.inference.keypoint_warmup if keypoint_warmup is None else int(keypoint_warmup)
        self.clip = cfg.inference.clip if clip is None else float(clip)
        dev = model.vertex_init.device
        S, h, B, V = cfg.arch.image_size, cfg.arch.feature_size, batch, views
        z = lambda *shape: torch.zeros(*shape, device=dev)  # noqa: E731
        self.inputs = dict(images=z(B, V, 3, S, S), masks=z(B, V, 1, S, S), heatmaps=z(B, V, cfg.arch.heatmap_channels, h, h),
                           A=z(B, V, 3, 3), b=z(B, V, 3), K=z(B, V, 3, 3), keypoints=z(B, cfg.arch.num_keypoints, 3))
        if cfg.inference.vertex_prior == "image":
            self.inputs["shape_w"] = z(B, model.id_modes.shape[0])
        model.freeze_last(True)
        self.graph = None
        if graph and dev.type == "cuda":
            try:
                self._capture(example)
            except BaseException:
                self.close()  # a failed capture leaves the model as it was
                raise

    def _capture(self, example):
        if example is None:
            raise ValueError("capturing a CUDA graph needs example inputs for its warm-up")
        self._load(example)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):  # warm-up outside the graph (cuDNN/cuBLAS choose their kernels)
                self._run()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.outputs = self._run()

    def _run(self):
        x, m = self.inputs, self.model
        with torch.autocast(x["images"].device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
            feats = m.encode(x["images"], x["masks"], x["heatmaps"])
            feats.shape_w = x.get("shape_w")
            v = m.vertex_init[None].expand(x["images"].shape[0], -1, -1)
            return m.descend(feats, v, x["keypoints"], x["A"], x["b"], x["K"], self.clip, self.iterations, self.warmup)

    def _load(self, given: dict):
        given = {k: v for k, v in given.items() if not (k == "shape_w" and v is None)}
        if "shape_w" in self.inputs and "shape_w" not in given:
            given["shape_w"] = torch.zeros_like(self.inputs["shape_w"])  # the mean shape
        if set(given) != set(self.inputs):
            raise ValueError(f"inputs are {sorted(self.inputs)}, not {sorted(given)}")
        for name, value in given.items():
            if value.shape != self.inputs[name].shape:
                raise ValueError(f"{name} is {tuple(value.shape)}; this StaticDescent takes {tuple(self.inputs[name].shape)}")
            self.inputs[name].copy_(value)

    def __call__(self, images, masks, heatmaps, A, b, K, keypoints, shape_w=None):
        self._load(dict(images=images, masks=masks, heatmaps=heatmaps, A=A, b=b, K=K, keypoints=keypoints,
                        shape_w=shape_w))
        if self.graph is None:
            with torch.no_grad():
                return self._run()
        self.graph.replay()
        return self.outputs

    def close(self):
        """Release the graph and unfreeze the model's last layers."""
        self.graph = None
        self.model.freeze_last(False)
