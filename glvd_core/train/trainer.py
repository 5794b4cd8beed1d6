"""GLVD training: SDF pretraining of f_v, keypoint branch, vertex branch — each resumable.

``python -m glvd_core train --config lite --data DIR --out RUN [--resume]``

Files in RUN: ``last.pt`` (latest checkpoint: stage, step, weights, optimiser), ``stage_<name>.pt``
at the end of each stage, ``model.pt`` (the finished model: config, template hash, weights,
recipe), ``metrics.jsonl`` (one line per logged step), ``config.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CHECKPOINT_FORMAT, MODEL_FORMAT, atomic_save, load_checkpoint, resolve_device
from ..geometry.tensor import clip_norm
from ..model.config import GLVDConfig
from ..model.glvd import GLVD, landmark_heatmaps
from ..template import Template, load_template
from .batch import Batch, SceneBank

STAGES = ("sdf", "kp", "vertex")


# ------------------------------------------------------------------------------------ losses
def displacement_loss(pred: torch.Tensor, target: torch.Tensor, cfg: GLVDConfig) -> torch.Tensor:
    """Eq. 3: lambda1 (1 - cos(pred, target)) + lambda2 | |pred| - |target| |, magnitudes in clip
    units (our decision: keeps the magnitude term on the directional term's scale)."""
    pn, tn = pred.norm(dim=-1), target.norm(dim=-1)
    cos = (pred * target).sum(-1) / (pn * tn).clamp_min(1e-8)
    return (cfg.train.lambda_dir * (1 - cos) + cfg.train.lambda_mag * (pn - tn).abs() / cfg.inference.clip).mean()


def step_rng(seed: int, stage: str, step: int, rank: int = 0) -> tuple[np.random.Generator, torch.Generator]:
    ss = np.random.SeedSequence([seed, STAGES.index(stage), step, rank])
    g = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint32)[0]))
    return np.random.default_rng(ss), g


@dataclass
class TrainOptions:
    """Run options that are not part of the model config."""

    ckpt_every: int = 200      # steps between checkpoints
    log_every: int = 10        # steps between metric lines
    max_scenes: int = 0        # 0 = all scenes of the dataset(s)
    device: str = "auto"
    threads: int = 0           # CPU threads (0 = torch default)
    stop_after: int = 0        # stop after this many steps in this process (tests; 0 = never)
    time_limit_s: float = 0    # save last.pt and stop after this many seconds of training (0 = never);
                               # --resume continues exactly where it stopped (leased GPUs, job queues)
    loader_threads: int = -1   # threads that assemble the next batches while the device trains
                               # (-1 = auto: 6 on CUDA, 0 on CPU, where they would compete with torch)
    progress: bool = True
    amp: str = "auto"          # bf16 autocast: "auto" (on CUDA), "bf16" (also on CPU), "off"
    init: str | None = None    # start a new run from these weights (model or checkpoint, same shapes);
                               # from a model without the vertex prior into one with it, g_v's last
                               # layer starts at 1 % (the residual on the keypoint-posed template)


class Trainer:
    def __init__(self, cfg: GLVDConfig, data: str | Path | Sequence[str | Path], out: str | Path,
                 opts: TrainOptions | None = None, template: Template | None = None, resume: bool = False):
        if cfg.inference.vertex_prior == "image":
            raise ValueError("vertex_prior=image is an inference-time choice (the shape comes from each photo): "
                             "train with vertex_prior=keypoints and set image when shipping")
        self.cfg, self.opts = cfg, opts or TrainOptions()
        self.out = Path(out)
        self.tpl = template or load_template()
        if self.opts.threads:
            torch.set_num_threads(self.opts.threads)
        self.device = resolve_device(self.opts.device)
        if self.opts.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be auto, bf16 or off, not {self.opts.amp!r}")
        self.amp = self.opts.amp == "bf16" or (self.opts.amp == "auto" and self.device.type == "cuda")
        self.frozen_parts = list(cfg.train.vertex_stage_frozen)
        self.ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.rank = int(os.environ.get("RANK", "0"))
        if self.ddp:
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
        with torch.random.fork_rng(devices=[]):  # initial weights are a function of cfg.train.seed
            torch.manual_seed(cfg.train.seed)
            self.model = GLVD(cfg, self.tpl).to(self.device)
        self.faces = torch.as_tensor(self.tpl.faces, dtype=torch.long, device=self.device)
        self.stage, self.step = STAGES[0], 0
        self.out.mkdir(parents=True, exist_ok=True)
        last = self.out / "last.pt"
        if last.exists() and not resume:
            raise FileExistsError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
        self.bank = SceneBank(data, cfg, self.tpl, max_scenes=self.opts.max_scenes or None,
                              log=print if self.rank == 0 else (lambda *a: None))
        self.opt_state = None
        if resume and not last.exists() and self.rank == 0:
            partial = [p.name for p in (self.out / ".last.pt.tmp", self.out / "last.pt.tmp") if p.exists()]
            why = (f"the only checkpoint ({partial[0]}) was cut off while being written" if partial
                   else "it holds no checkpoint yet")
            print(f"nothing to resume in {self.out}: {why}; starting from the beginning", file=sys.stderr)
            for name in partial:
                (self.out / name).unlink()
            (self.out / "metrics.jsonl").unlink(missing_ok=True)  # lines of the lost steps
        if resume and last.exists():
            self._load(last)
            if self.rank == 0:
                self._trim_metrics()
        elif self.opts.init:
            self._init_from(self.opts.init)
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    # -- checkpoints ------------------------------------------------------------------------
    def _read_weights(self, path) -> dict:
        """Load a checkpoint or model file's weights into the network (fp16 files too); returns it."""
        ck = load_checkpoint(path)
        if ck["template_sha256"] != self.tpl.sha256:
            raise ValueError(f"{path}: made for another template")
        state = {k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()}
        try:
            self.model.net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path}: its architecture differs from config {self.cfg.name!r}: {str(e)[:300]}") from None
        return ck

    def _load(self, path: Path):
        ck = self._read_weights(path)
        self.stage, self.step = ck["stage"], int(ck["step"])
        self.opt_state = ck.get("optimizer")
        if self.rank == 0:
            print(f"resumed {path}: stage {self.stage}, step {self.step}")

    def _trim_metrics(self):
        """Drop the metrics.jsonl lines of steps after the checkpoint: they are trained (and logged)
        again after a resume, and would otherwise appear twice."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return
        order = {name: i for i, name in enumerate(STAGES)}
        here = (order.get(self.stage, len(STAGES)), self.step)
        keep = []
        for line in path.read_text().splitlines():
            try:
                m = json.loads(line)
                if (order.get(m["stage"], len(STAGES)), int(m["step"])) <= here:
                    keep.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut off by the kill
        path.write_text("".join(f"{line}\n" for line in keep))

    def _init_from(self, path):
        src = GLVDConfig.from_dict(self._read_weights(path)["config"])
        if src.inference.vertex_prior == "none" and self.cfg.inference.vertex_prior != "none":
            l3 = self.model.net.g_v.l3
            with torch.no_grad():  # the residual starts near zero (the descent starts as the posed
                # template); 1 % rather than 0 keeps gradients flowing into the hidden layers, which
                # otherwise died (all ReLUs off) within 500 steps — measured
                l3.parametrizations.weight.original0.mul_(0.01)
                l3.bias.zero_()
        if self.rank == 0:
            print(f"initialised from {path}")

    def _save(self, opt, name="last.pt"):
        if self.rank != 0:
            return
        atomic_save(dict(format=CHECKPOINT_FORMAT, config=self.cfg.to_dict(), template_sha256=self.tpl.sha256,
                         stage=self.stage, step=self.step, model=self.model.net.state_dict(),
                         optimizer=opt.state_dict() if opt is not None else None), self.out / name)

    # -- stages --------------------------------------------------------------------------
    def stage_params(self, stage: str) -> list[torch.nn.Parameter]:
        n = self.model.net
        return {"sdf": [*n.f_v.parameters(), *n.sdf.parameters()], "kp": [*n.f_s.parameters(), *n.g_k.parameters()],
                "vertex": [p for k, p in [*n.f_v.named_parameters("f_v"), *n.g_v.named_parameters("g_v")]
                           if not any(k.startswith(f + ".") for f in self.frozen_parts)]}[stage]

    def stage_steps(self, stage: str) -> int:
        return {"sdf": self.cfg.train.sdf_steps, "kp": self.cfg.train.kp_steps, "vertex": self.cfg.train.vertex_steps}[stage]

    def lr_at(self, stage: str, step: int) -> float:
        T = self.stage_steps(stage)
        t0 = self.cfg.train.decay_start * T
        return self.cfg.train.lr if step < t0 else self.cfg.train.lr * max(0.0, (T - step) / max(T - t0, 1))

    def _batches(self, stage: str, start: int, end: int):
        """Yields (batch on the CPU, torch generator, views) for steps start..end-1.

        Each batch is a function of (seed, stage, step, rank) alone, so the stream is the same with
        or without loader threads and after a resume; threads only build the next ones ahead."""
        def make(step):
            rng, gen = step_rng(self.cfg.train.seed, stage, step, self.rank)
            n_views = 3 if rng.random() < self.cfg.train.multiview_prob else 1
            return self.bank.batch(rng, self.cfg.train.batch_size, n_views), gen, n_views

        n = self.opts.loader_threads
        if n < 0:
            n = 6 if self.device.type == "cuda" else 0
        if n == 0:
            for step in range(start, end):
                yield make(step)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n, thread_name_prefix="glvd-batch") as pool:
            ahead = deque(pool.submit(make, s) for s in range(start, min(end, start + 2 * n)))
            nxt = start + len(ahead)
            try:
                while ahead:
                    out = ahead.popleft().result()
                    if nxt < end:
                        ahead.append(pool.submit(make, nxt))
                        nxt += 1
                    yield out
            finally:
                for f in ahead:
                    f.cancel()

    def run(self) -> Path:
        """Runs the remaining stages; returns the exported model, or last.pt when stopped early
        (``stop_after`` / ``time_limit_s``; ``self.stopped_early`` is then True)."""
        done_steps, t_run = 0, time.time()
        self.stopped_early = False
        for stage in STAGES[STAGES.index(self.stage):]:
            if stage != self.stage:
                self.stage, self.step, self.opt_state = stage, 0, None
            T = self.stage_steps(stage)
            params = self.stage_params(stage)
            for p in self.model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            # the loss runs inside a module's forward so that DDP (torchrun) averages the gradients
            train_model = StageLoss(self)
            if self.ddp:
                train_model = torch.nn.parallel.DistributedDataParallel(train_model, find_unused_parameters=True)
            opt = torch.optim.Adam(params, lr=self.cfg.train.lr, betas=(0.9, 0.999))
            if self.opt_state is not None:
                opt.load_state_dict(self.opt_state)
                self.opt_state = None
            t_start, ema, stage_done = time.time(), None, 0
            batches = self._batches(stage, self.step, T)
            while self.step < T:
                for gparam in opt.param_groups:
                    gparam["lr"] = self.lr_at(stage, self.step)
                batch, gen, n_views = next(batches)
                batch = batch.to(self.device)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss = train_model(stage, batch, gen)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss at stage {stage} step {self.step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.step += 1
                done_steps += 1
                stage_done += 1
                lv = loss.item()
                ema = lv if ema is None else 0.95 * ema + 0.05 * lv
                if self.rank == 0 and (self.step % self.opts.log_every == 0 or self.step == T):
                    el = time.time() - t_start
                    sps = self.cfg.train.batch_size * stage_done / max(el, 1e-9)
                    with open(self.out / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(dict(stage=stage, step=self.step, loss=lv, loss_ema=ema,
                                                lr=opt.param_groups[0]["lr"], views=n_views,
                                                scenes_per_s=sps, time=time.time())) + "\n")
                    if self.opts.progress:
                        w = 24
                        f_ = int(w * self.step / T)
                        print(f"\r{stage:>6} [{'#' * f_}{'.' * (w - f_)}] {self.step}/{T} loss {ema:.4f} "
                              f"{sps:.2f} scenes/s", end="", file=sys.stderr, flush=True)
                if self.step % self.opts.ckpt_every == 0 or self.step == T:
                    self._save(opt)
                if (self.opts.stop_after and done_steps >= self.opts.stop_after) or (
                        self.opts.time_limit_s and time.time() - t_run >= self.opts.time_limit_s):
                    if self.step % self.opts.ckpt_every and self.step != T:
                        self._save(opt)
                    self.stopped_early = True
                    return self.out / "last.pt"
            if self.opts.progress and self.rank == 0:
                print(file=sys.stderr)
            if self.ddp:
                self._check_in_sync(stage)
            self._save(opt, f"stage_{stage}.pt")
        return self.export()

    def _check_in_sync(self, stage):
        """DDP: every rank must hold the same weights after a stage (the gradients were averaged)."""
        import torch.distributed as dist

        x = torch.stack([p.detach().double().sum() for p in self.stage_params(stage)]).to(self.device)
        lo, hi = x.clone(), x.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        if not torch.allclose(lo, hi, rtol=1e-6, atol=1e-6):
            raise RuntimeError(f"DDP ranks diverged in stage {stage}: gradients were not averaged")

    def export(self) -> Path:
        path = self.out / "model.pt"
        if self.rank == 0:
            atomic_save(dict(format=MODEL_FORMAT, config=self.cfg.to_dict(), template_sha256=self.tpl.sha256,
                             model=self.model.net.state_dict(),
                             recipe=dict(scenes=len(self.bank), steps={s: self.stage_steps(s) for s in STAGES},
                                         seed=self.cfg.train.seed)), path)
        return path

    # -- per-stage losses ------------------------------------------------------------------
    def _heatmaps(self, b: Batch):
        c = self.cfg.arch
        return landmark_heatmaps(b.landmarks_px, b.landmarks_ok, c.image_size, c.feature_size, c.heatmap_sigma_px)

    def _uniform(self, gen, B, n, extent=1.0):
        return (torch.rand(B, n, 3, generator=gen) * 2 - 1).mul(extent).to(self.device)

    def _near(self, gen, pts, n, sigmas):
        B, N = pts.shape[:2]
        idx = torch.randint(0, N, (B, n), generator=gen).to(self.device)
        s = torch.as_tensor(sigmas)[torch.randint(0, len(sigmas), (B, n, 1), generator=gen)].to(self.device)
        base = torch.gather(pts, 1, idx[..., None].expand(B, n, 3))
        return base + torch.randn(B, n, 3, generator=gen).to(self.device) * s, idx

    def loss_sdf(self, b: Batch, gen: torch.Generator) -> torch.Tensor:
        B, V = b.images.shape[:2]
        Q = self.cfg.train.queries_per_scene
        near, _ = self._near(gen, b.gt_vertices, Q - Q // 4, [0.01, 0.03, 0.1])
        q = torch.cat([self._uniform(gen, B, Q // 4), near], 1)
        fv = self.model.encode_vertex_only(b.images, b.masks)
        pred = self.model.sdf(fv, B, V, q, b.A, b.b, b.K)
        with torch.no_grad():
            nrm = vertex_normals_t(b.gt_vertices, self.faces)
            d, j = torch.cdist(q, b.gt_vertices).min(-1)
            vj = torch.gather(b.gt_vertices, 1, j[..., None].expand(-1, -1, 3))
            nj = torch.gather(nrm, 1, j[..., None].expand(-1, -1, 3))
            sign = torch.sign(((q - vj) * nj).sum(-1))
            target = (d * torch.where(sign == 0, torch.ones_like(sign), sign)).clamp(-0.2, 0.2)
        return (pred.clamp(-0.2, 0.2) - target).abs().mean() / 0.2

    def loss_kp(self, b: Batch, gen: torch.Generator) -> torch.Tensor:
        B, V = b.images.shape[:2]
        Q = self.cfg.train.queries_per_scene
        gk = b.gt_keypoints
        n3 = Q // 3
        init = self._uniform(gen, B, n3, self.cfg.inference.kp_init_extent)
        alpha = torch.rand(B, n3, 1, generator=gen).to(self.device)
        idx = torch.randint(0, gk.shape[1], (B, n3), generator=gen).to(self.device)
        interp = (1 - alpha) * init + alpha * torch.gather(gk, 1, idx[..., None].expand(B, n3, 3))
        near, _ = self._near(gen, gk, n3, [0.01, 0.03, 0.1])
        q = torch.cat([self._uniform(gen, B, Q - 2 * n3), interp, near], 1)
        with torch.no_grad():
            fv0 = self.model.net.f_v(torch.cat([b.images, b.masks], 2).flatten(0, 1))[0]
            small = torch.nn.functional.avg_pool2d(torch.cat([b.images, b.masks], 2).flatten(0, 1), 4)
        fk = self.model.net.f_s(small, fv0, self._heatmaps(b).flatten(0, 1))
        h = self.model.keypoint_hidden(fk, B, V, q, b.A, b.b, b.K)
        pred = self.model.net.g_k.head(h)  # (B, Q, K, 3): every keypoint target
        target = clip_norm(gk[:, None] - q[:, :, None], self.cfg.inference.clip)
        return displacement_loss(pred, target, self.cfg)

    def loss_vertex(self, b: Batch, gen: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        B, V = b.images.shape[:2]
        Q, N = cfg.train.queries_per_scene, b.gt_vertices.shape[1]
        init = self.model.vertex_init.expand(B, -1, -1)
        n_u, n_g = Q // 4, Q // 4
        n_i = Q - n_u - n_g
        near, own_g = self._near(gen, b.gt_vertices, n_g, [0.005, 0.02, 0.06])
        idx = torch.randint(0, N, (B, n_i), generator=gen).to(self.device)
        alpha = torch.rand(B, n_i, 1, generator=gen).to(self.device)
        src = torch.gather(init, 1, idx[..., None].expand(B, n_i, 3))
        dst = torch.gather(b.gt_vertices, 1, idx[..., None].expand(B, n_i, 3))
        interp = (1 - alpha) * src + alpha * dst + torch.randn(B, n_i, 3, generator=gen).to(self.device) * 0.02
        q = torch.cat([self._uniform(gen, B, n_u), near, interp], 1)
        own = torch.cat([torch.randint(0, N, (B, n_u), generator=gen).to(self.device), own_g, idx], 1)
        # noisy GT keypoints: sigma, 3 sigma along the camera-0 depth axis (normalised z)
        noise = torch.randn(b.gt_keypoints.shape, generator=gen).to(self.device) * cfg.train.kp_noise_sigma
        noise[..., 2] *= 3
        kps = b.gt_keypoints + noise
        with torch.set_grad_enabled("f_v" not in self.frozen_parts):
            fv = self.model.encode_vertex_only(b.images, b.masks)
        mask = None
        if cfg.train.feature_dropout > 0:
            keep = (torch.rand(B, V, Q, cfg.arch.fv_dim, generator=gen) >= cfg.train.feature_dropout).to(self.device)
            mask = keep.float() / (1 - cfg.train.feature_dropout)
        h = self.model.vertex_hidden(fv, B, V, q, kps, b.A, b.b, b.K, dropout_mask=mask)
        own_gt = torch.gather(b.gt_vertices, 1, own[..., None].expand(-1, -1, 3))
        with torch.no_grad():
            prior = self.model.vertex_prior(kps)  # None, or the keypoint-posed template (B, N, 3)
        own_loss = displacement_loss(self.model.vertex_displacement(h, q, own, prior), clip_norm(own_gt - q, cfg.inference.clip), cfg)
        if cfg.train.targets_per_query and cfg.train.targets_per_query < N:
            # S random rows shared by the scene's queries (one matmul)
            tgt = torch.randint(0, N, (B, cfg.train.targets_per_query), generator=gen).to(self.device)
            pred = self.model.net.g_v.head_shared(h, tgt)
            gt = torch.gather(b.gt_vertices, 1, tgt[..., None].expand(-1, -1, 3)).unsqueeze(1)
            if prior is not None:
                pred = pred + self.model.prior_pull(torch.gather(prior, 1, tgt[..., None].expand(-1, -1, 3)).unsqueeze(1), q[:, :, None])
        else:
            pred = self.model.net.g_v.head(h)
            gt = b.gt_vertices[:, None]
            if prior is not None:
                pred = pred + self.model.prior_pull(prior[:, None], q[:, :, None])
        rows_loss = displacement_loss(pred, clip_norm(gt - q[:, :, None], cfg.inference.clip), cfg)
        return cfg.train.own_row_weight * own_loss + (1 - cfg.train.own_row_weight) * rows_loss


class StageLoss(torch.nn.Module):
    """The model with a forward that computes one stage's loss — the module DDP wraps."""

    def __init__(self, trainer: "Trainer"):
        super().__init__()
        self.model = trainer.model
        self._trainer = [trainer]  # a list: not registered as a submodule

    def forward(self, stage: str, batch: Batch, gen: torch.Generator) -> torch.Tensor:
        return getattr(self._trainer[0], f"loss_{stage}")(batch, gen)


def vertex_normals_t(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) vertices -> (B, N, 3) area-weighted unit normals."""
    a, b, c = v[:, faces[:, 0]], v[:, faces[:, 1]], v[:, faces[:, 2]]
    fn = torch.cross(b - a, c - a, dim=-1)
    n = torch.zeros_like(v)
    for k in range(3):
        n.index_add_(1, faces[:, k], fn)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
