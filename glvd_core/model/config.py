"""Typed configs of a GLVD model, one dataclass per concern, documented field by field.

- :class:`ArchConfig`: the networks' shapes and the normalised frame; the weights depend on it.
- :class:`InferenceConfig`: how the descent runs; a user may change it without retraining.
- :class:`TrainConfig`: how the weights were (or will be) trained.

:class:`GLVDConfig` holds one of each. A model file stores it *flat* (one dict of every field,
``glvd-model/1``); :meth:`GLVDConfig.from_dict` and :meth:`GLVDConfig.to_dict` convert, and
``get_config(name, field=value, ...)`` / :meth:`GLVDConfig.replace` take flat field names too,
so ``--set FIELD=VALUE`` on the command line needs no section. Choices are ``Literal`` types,
checked when a config is made.

Geometry lives in a *normalised frame*: camera-0 axes (OpenCV: x right, y down, z forward),
centred on the head, 1 unit = ``frame_scale_m`` metres, so the face fits the cube [-1, 1]^3.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from typing import Literal, get_args

Encoding = Literal["relative", "distance", "none"]
Update = Literal["parallel", "sequential"]
VertexPrior = Literal["none", "keypoints", "image"]
FrozenPart = Literal["f_v", "g_v.l1", "g_v.l2", "g_v.l3"]


def _check_literals(obj) -> None:
    """Raise ValueError for a field whose value is not one of its ``Literal`` choices."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        choices = get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else None
        if choices and getattr(obj, f.name) not in choices:
            raise ValueError(f"{f.name} must be one of {', '.join(map(repr, choices))}, not {getattr(obj, f.name)!r}")


@dataclass(frozen=True)
class ArchConfig:
    """Architecture and frame: changing any field needs new weights."""

    name: str = "paper"              # preset the config came from (paper, lite, tiny)
    # -- input ---------------------------------------------------------------------------
    image_size: int = 256            # network input side (pixels); RGB + mask
    # -- f_v: stacked hourglass (GroupNorm) ---------------------------------------------------
    fv_stacks: int = 4               # hourglass stacks
    fv_width: int = 256              # channels inside each hourglass
    fv_out: int = 64                 # channels of each stack's output map (64x64 for 256 input)
    hg_depth: int = 4                # down-sampling levels per hourglass
    groups: int = 32                 # GroupNorm groups
    # -- f_s: single-stack hourglass over [image, mask, stack-1 features, heatmaps] ----------
    fs_width: int = 256
    fs_out: int = 256                # F_k dimension
    heatmap_channels: int = 68       # 2D landmark heatmaps (Multi-PIE 68 layout)
    heatmap_sigma_px: float = 1.5    # Gaussian sigma at feature resolution
    # -- MLPs ------------------------------------------------------------------------------
    hidden_v: int = 512              # g_v hidden width (3 layers, ReLU, weight norm)
    hidden_k: int = 512              # g_k hidden width
    num_keypoints: int = 18          # K: 5, 9, 18 or 68 (template keypoint subsets)
    encoding: Encoding = "relative"  # keypoint encoding of g_v: P = k - v, |k - v|, or "none" (LVD ablation)
    update: Update = "parallel"      # keypoints and vertices from the same state, or vertices after keypoints
    # -- normalised frame -------------------------------------------------------------------
    frame_scale_m: float = 0.16      # metres per normalised unit
    head_extent_m: float = 0.36      # nominal head height framed by a crop (as the data engine)
    nominal_fill: float = 0.925      # nominal head height / crop height

    def __post_init__(self):
        _check_literals(self)
        if self.num_keypoints not in (5, 9, 18, 68):
            raise ValueError(f"num_keypoints must be 5, 9, 18 or 68, not {self.num_keypoints}")
        if self.image_size % 4 or self.image_size <= 0:
            raise ValueError(f"image_size must be a positive multiple of 4, not {self.image_size}")

    @property
    def feature_size(self) -> int:
        return self.image_size // 4

    @property
    def fv_dim(self) -> int:
        return self.fv_stacks * self.fv_out


@dataclass(frozen=True)
class InferenceConfig:
    """How the descent runs; a trained model's user may change these (``--set`` on evaluate)."""

    iterations: int = 10             # default descent steps T (the result keeps T + 1 shapes)
    clip: float = 0.1                # displacement clip per step, normalised units (train and default test)
    kp_init_extent: float = 0.5      # keypoints start uniformly in [-e, e]^3
    keypoint_warmup: int = 0         # first W descent steps move only the keypoints (set per model by
                                     # measurement; the bundled model's value is in docs/RESULTS.md)
    vertex_prior: VertexPrior = "none"  # what g_v's displacement is added to:
                                     # "none" (the paper: g_v predicts the whole displacement);
                                     # "keypoints": a residual on clip(T_k(template_i) - v_i), T_k the
                                     # similarity taking the template's keypoints onto the current ones
                                     # (how the bundled model's vertex branch was trained);
                                     # "image": as "keypoints", but the template is first shaped by the ICT
                                     # identity weights the identity CNN reads from the face crop
                                     # (model/identity_cnn.py; the bundled model's inference setting)

    def __post_init__(self):
        _check_literals(self)
        if self.iterations < 0 or self.keypoint_warmup < 0:
            raise ValueError(f"iterations and keypoint_warmup must be >= 0, not {self.iterations}, {self.keypoint_warmup}")
        if not self.clip > 0 or not self.kp_init_extent > 0:
            raise ValueError(f"clip and kp_init_extent must be > 0, not {self.clip}, {self.kp_init_extent}")


@dataclass(frozen=True)
class TrainConfig:
    """Training: losses, sampling, schedule (``python -m glvd_core train``)."""

    queries_per_scene: int = 1400    # hybrid query points per scene
    targets_per_query: int = 0       # vertex targets per scene (0 = all 7225; else this many random rows
                                     # shared by the scene's queries, plus each query's own row)
    kp_noise_sigma: float = 0.02     # GT keypoint noise (normalised units); 3 sigma along camera depth
    own_row_weight: float = 0.5      # share of the vertex loss on each query's own row — the diagonal the
                                     # descent uses (with 1/N of the loss it trains 8x worse than the other
                                     # rows; measured, see CHANGELOG.md)
    feature_dropout: float = 0.1     # binary dropout on F_v
    landmark_noise_px: float = 2.0   # noise on projected GT landmarks (input pixels) for heatmaps
    lambda_dir: float = 0.5          # Eq. 3 directional term
    lambda_mag: float = 0.5          # Eq. 3 magnitude term
    batch_size: int = 4
    multiview_prob: float = 0.3      # fraction of training steps with 3 views (world frame) instead of 1
    lr: float = 1e-3
    sdf_steps: int = 2000            # stage 1: SDF pretraining of f_v
    kp_steps: int = 4000             # stage 2: keypoint branch
    vertex_steps: int = 10000        # stage 3: vertex branch
    vertex_stage_frozen: tuple[FrozenPart, ...] = ()  # parts kept frozen in the vertex stage, e.g.
                                     # ("f_v", "g_v.l1", "g_v.l2"): a residual fine-tune of g_v's last layer
                                     # on features already trained (f_v frozen also makes steps faster);
                                     # a model file stores it comma-separated
    decay_start: float = 0.2         # fraction of a stage's steps before linear LR decay
    mirror: bool = True              # mirror symmetrisation (doubles the data)
    augment: bool = True             # colour, blur, zoom/jitter augmentation
    seed: int = 0

    def __post_init__(self):
        frozen = self.vertex_stage_frozen
        if isinstance(frozen, str):  # the flat file form, "f_v,g_v.l1"
            frozen = tuple(p.strip() for p in frozen.split(",") if p.strip())
            object.__setattr__(self, "vertex_stage_frozen", frozen)
        unknown = [p for p in frozen if p not in get_args(FrozenPart)]
        if unknown:
            raise ValueError(f"vertex_stage_frozen: unknown part(s) {unknown}; choose from "
                             f"{', '.join(get_args(FrozenPart))}")


SECTIONS = {"arch": ArchConfig, "inference": InferenceConfig, "train": TrainConfig}
_SECTION_OF = {f.name: s for s, cls in SECTIONS.items() for f in fields(cls)}
# Fields of experiments that never shipped (their results: research/). A model file that holds
# one at its never-shipped default still loads; any other value is refused with where to look.
RETIRED = {"prior_noise_m": 0.008, "image_prior_mirror": False, "prior_landmark_noise_px": 4.5,
           "prior_landmark_error_shared": False, "image_prior_landmark_sd": 0.0}


@dataclass(frozen=True)
class GLVDConfig:
    """A model's whole config: architecture, inference and training sections."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def name(self) -> str:
        return self.arch.name

    def replace(self, **flat: object) -> "GLVDConfig":
        """A copy with flat field overrides (``iterations=12``, ``image_size=128``), each routed
        to its section; an unknown field raises ValueError."""
        unknown = sorted(set(flat) - set(_SECTION_OF))
        if unknown:
            raise ValueError(f"unknown config field(s) {', '.join(unknown)}")
        parts = {s: {k: v for k, v in flat.items() if _SECTION_OF[k] == s} for s in SECTIONS}
        return GLVDConfig(**{s: dataclasses.replace(getattr(self, s), **parts[s]) for s in SECTIONS})

    def to_dict(self) -> dict:
        """The flat dict a model file stores."""
        out = {}
        for s in SECTIONS:
            out.update(dataclasses.asdict(getattr(self, s)))
        out["vertex_stage_frozen"] = ",".join(self.train.vertex_stage_frozen)
        return out

    @staticmethod
    def from_dict(d: dict) -> "GLVDConfig":
        """From a model file's flat dict; fields added since it was written take their defaults."""
        for k, default in RETIRED.items():
            if k in d and d[k] != default:
                raise ValueError(f"this model sets {k}={d[k]!r}, an experiment that never shipped "
                                 "(research/ holds its results and the commit that ran it)")
        return GLVDConfig().replace(**{k: v for k, v in d.items() if k in _SECTION_OF})

    @staticmethod
    def field_type(name: str) -> type:
        """The Python type of a flat field (for parsing ``FIELD=VALUE``); ValueError if unknown."""
        if name not in _SECTION_OF:
            raise ValueError(f"unknown config field {name!r}")
        hint = typing.get_type_hints(SECTIONS[_SECTION_OF[name]])[name]
        return str if typing.get_origin(hint) in (Literal, tuple) else hint


PRESETS = {
    # The paper's sizes: 256^2 input, 4 stacks, hidden 512, K = 18.
    "paper": GLVDConfig(),
    # Small enough to train usefully on 2 CPU cores in a couple of hours.
    "lite": GLVDConfig().replace(
        name="lite", image_size=128, fv_stacks=2, fv_width=64, fv_out=32, hg_depth=3, groups=8, fs_width=64,
        fs_out=64, hidden_v=256, hidden_k=128, queries_per_scene=600, targets_per_query=192, batch_size=4,
        sdf_steps=300, kp_steps=1200, vertex_steps=3000, heatmap_sigma_px=1.0, landmark_noise_px=1.5),
    # For tests: seconds per step on a CPU.
    "tiny": GLVDConfig().replace(
        name="tiny", image_size=64, fv_stacks=1, fv_width=16, fv_out=8, hg_depth=2, groups=4, fs_width=16,
        fs_out=16, hidden_v=64, hidden_k=32, queries_per_scene=128, targets_per_query=64, batch_size=2, sdf_steps=20,
        kp_steps=20, vertex_steps=40, heatmap_sigma_px=1.0, landmark_noise_px=1.0),
}


def get_config(name: str, **overrides: object) -> GLVDConfig:
    """A preset with flat field overrides (:meth:`GLVDConfig.replace`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown config {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
