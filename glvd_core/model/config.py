"""One dataclass config per model / training run, documented field by field."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass
class GLVDConfig:
    """Architecture, descent and training settings of a GLVD model.

    Geometry lives in a *normalised frame*: camera-0 axes (OpenCV: x right, y down, z forward),
    centred on the head, 1 unit = ``frame_scale_m`` metres, so the face fits the cube [-1, 1]^3.
    """

    name: str = "paper"
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
    # -- ablation switches ---------------------------------------------------------------
    encoding: str = "relative"       # "relative" (P = k - v), "distance" (|k - v|), "none" (LVD)
    update: str = "parallel"         # "parallel" (both from the same state) or "sequential"
    vertex_prior: str = "none"       # "none" (the paper: g_v predicts the whole displacement) or
                                     # "keypoints" (our option: g_v predicts a residual added to
                                     # clip(T_k(template_i) - v_i), T_k the similarity taking the template's
                                     # keypoints onto the current keypoints — a residual on the
                                     # keypoint-posed template; measured in docs/RESULTS.md) or
                                     # "identity" (as "keypoints", but the template is first shaped by
                                     # a ridge fit of the ICT identity modes to the current keypoints,
                                     # up to a similarity; see prior_noise_m) or
                                     # "landmarks" (as "keypoints", but the template is first shaped by
                                     # the MAP fit of the identity modes to the detected 2D landmarks,
                                     # made once before the descent; see prior_landmark_noise_px; an
                                     # inference-time choice for a model trained with "keypoints") or
                                     # "image" (as "landmarks", but the identity weights are read from
                                     # the face crop by a small CNN, model/identity_cnn.py; also
                                     # inference-time only)
    prior_noise_m: float = 0.008     # "identity" prior: assumed keypoint error (metres) of the ridge fit,
                                     # identity weights ~ N(0, 1); larger = closer to the mean face
                                     # (chosen on a validation set, see docs/RESULTS.md)
    image_prior_mirror: bool = False # "image" prior: also read each crop mirrored (x -> -x), map that reading
                                     # back through the template's symmetry and average the two (test-time
                                     # mirror averaging; the reading of a mirrored photo is then the mirror of
                                     # the photo's; measured in docs/RESULTS.md, "Mirror averaging")
    prior_landmark_noise_px: float = 4.5  # "landmarks" prior: assumed 2D landmark error at 256 px of
                                     # the fit (identity weights ~ N(0, 1)); the 3DMM baseline's value;
                                     # also the "image" prior's landmark fit (image_prior_landmark_sd)
    prior_landmark_error_shared: bool = False  # the landmark fits of "landmarks" and image_prior_landmark_sd:
                                     # True assumes a face's landmark error is the same in every view (a
                                     # detector placing a landmark elsewhere on that face than the template
                                     # does), so V views together weigh as one: noise x sqrt(V); False
                                     # treats the views' errors as independent
    image_prior_landmark_sd: float = 0.0  # "image" prior: > 0 fuses the CNN's reading w_cnn with the views'
                                     # 2D landmarks — the MAP fit of the identity weights (+ head pose) to
                                     # the landmarks with the prior N(w_cnn, sd^2 I) instead of N(0, I), so
                                     # the landmarks move the reading only where they disagree with it;
                                     # 0 = the CNN's reading alone (chosen on a validation set, see
                                     # docs/RESULTS.md, "Fusing the CNN with the landmarks")
    # -- descent / normalisation ----------------------------------------------------------
    frame_scale_m: float = 0.16      # metres per normalised unit
    head_extent_m: float = 0.36      # nominal head height framed by a crop (as the data engine)
    nominal_fill: float = 0.925      # nominal head height / crop height
    clip: float = 0.1                # displacement clip, normalised units (train and default test)
    iterations: int = 10             # default descent steps
    kp_init_extent: float = 0.5      # keypoints start uniformly in [-e, e]^3
    keypoint_warmup: int = 0         # first W descent steps move only the keypoints (set per model by
                                     # measurement; the bundled lite model's value is in docs/RESULTS.md)
    # -- training ----------------------------------------------------------------------
    queries_per_scene: int = 1400    # hybrid query points per scene
    targets_per_query: int = 0       # vertex targets per scene (0 = all 7225; else this many random rows
                                     # shared by the scene's queries, plus each query's own row)
    kp_noise_sigma: float = 0.02     # GT keypoint noise (normalised units); 3 sigma along camera depth
    own_row_weight: float = 0.5      # share of the vertex loss on each query's own row — the diagonal the
                                     # descent uses (our decision: with 1/N of the loss it trains
                                     # 8x worse than the other rows; measured, see docs/RESULTS.md)
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
    vertex_stage_frozen: str = ""    # comma-separated parts kept frozen in the vertex stage, e.g.
                                     # "f_v,g_v.l1,g_v.l2" (a residual fine-tune of g_v's last layer
                                     # on features already trained; f_v frozen also makes steps faster)
    decay_start: float = 0.2         # fraction of a stage's steps before linear LR decay
    mirror: bool = True              # mirror symmetrisation (doubles the data)
    augment: bool = True             # colour, blur, zoom/jitter augmentation
    seed: int = 0

    @property
    def feature_size(self) -> int:
        return self.image_size // 4

    @property
    def fv_dim(self) -> int:
        return self.fv_stacks * self.fv_out

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "GLVDConfig":
        known = {f.name for f in fields(GLVDConfig)}
        return GLVDConfig(**{k: v for k, v in d.items() if k in known})


PRESETS = {
    # The paper's sizes: 256^2 input, 4 stacks, hidden 512, K = 18.
    "paper": GLVDConfig(),
    # Small enough to train usefully on 2 CPU cores in a couple of hours.
    "lite": GLVDConfig(name="lite", image_size=128, fv_stacks=2, fv_width=64, fv_out=32, hg_depth=3, groups=8,
                       fs_width=64, fs_out=64, hidden_v=256, hidden_k=128, queries_per_scene=600,
                       targets_per_query=192, batch_size=4, sdf_steps=300, kp_steps=1200, vertex_steps=3000,
                       heatmap_sigma_px=1.0, landmark_noise_px=1.5),
    # For tests: seconds per step on a CPU.
    "tiny": GLVDConfig(name="tiny", image_size=64, fv_stacks=1, fv_width=16, fv_out=8, hg_depth=2, groups=4,
                       fs_width=16, fs_out=16, hidden_v=64, hidden_k=32, queries_per_scene=128,
                       targets_per_query=64, batch_size=2, sdf_steps=20, kp_steps=20, vertex_steps=40,
                       heatmap_sigma_px=1.0, landmark_noise_px=1.0),
}


def get_config(name: str, **overrides) -> GLVDConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown config {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)
