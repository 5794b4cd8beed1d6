"""Convert the MediaPipe models the project runs (Apache-2.0, inside the mediapipe 0.10.21 wheel)
into ``glvd_core/assets/mediapipe_models.npz``, which :mod:`glvd_core.runtime.tflite` runs with
numpy alone (no TFLite, no MediaPipe: what the Blender extension carries).

Each model becomes its graph (the operators in order, with their options, as JSON) and its
constant tensors (fp16 weights kept fp16; ``DEQUANTIZE`` of a constant folded here).

    .venv/bin/pip install tflite==2.18.0          # the TFLite schema, for this script only
    .venv/bin/python scripts/convert_mediapipe_models.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {  # name in the asset -> path inside the mediapipe wheel
    "face_detection_short_range": "modules/face_detection/face_detection_short_range.tflite",
    "face_landmark_with_attention": "modules/face_landmark/face_landmark_with_attention.tflite",
    "face_detection_full_range": "modules/face_detection/face_detection_full_range_sparse.tflite",
    "selfie_segmentation": "modules/selfie_segmentation/selfie_segmentation.tflite",
}
_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_ACT = {0: None, 1: "relu", 3: "relu6"}
_PAD = {0: "same", 1: "valid"}


def _options(tflite, name: str, op) -> dict:
    """The options the numpy interpreter reads, by operator."""
    raw = op.BuiltinOptions()
    if name == "CONV_2D":
        o = tflite.Conv2DOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(padding=_PAD[o.Padding()], stride=[o.StrideH(), o.StrideW()], act=_ACT[o.FusedActivationFunction()],
                    dilation=[o.DilationHFactor(), o.DilationWFactor()])
    if name == "DEPTHWISE_CONV_2D":
        o = tflite.DepthwiseConv2DOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(padding=_PAD[o.Padding()], stride=[o.StrideH(), o.StrideW()], act=_ACT[o.FusedActivationFunction()],
                    dilation=[o.DilationHFactor(), o.DilationWFactor()], depth_multiplier=o.DepthMultiplier())
    if name == "MAX_POOL_2D":
        o = tflite.Pool2DOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(padding=_PAD[o.Padding()], stride=[o.StrideH(), o.StrideW()],
                    filter=[o.FilterHeight(), o.FilterWidth()], act=_ACT[o.FusedActivationFunction()])
    if name in ("ADD", "MUL"):
        o = tflite.AddOptions() if name == "ADD" else tflite.MulOptions()
        if raw is None:
            return dict(act=None)
        o.Init(raw.Bytes, raw.Pos)
        return dict(act=_ACT[o.FusedActivationFunction()])
    if name == "CONCATENATION":
        o = tflite.ConcatenationOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(axis=o.Axis(), act=_ACT[o.FusedActivationFunction()])
    if name == "STRIDED_SLICE":
        o = tflite.StridedSliceOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(begin_mask=o.BeginMask(), end_mask=o.EndMask(), shrink_axis_mask=o.ShrinkAxisMask(),
                    ellipsis_mask=o.EllipsisMask(), new_axis_mask=o.NewAxisMask())
    if name == "RESIZE_BILINEAR":
        o = tflite.ResizeBilinearOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(align_corners=bool(o.AlignCorners()), half_pixel_centers=bool(o.HalfPixelCenters()))
    if name == "DEPTH_TO_SPACE":
        o = tflite.DepthToSpaceOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(block_size=o.BlockSize())
    if name == "AVERAGE_POOL_2D":
        o = tflite.Pool2DOptions()
        o.Init(raw.Bytes, raw.Pos)
        return dict(padding=_PAD[o.Padding()], stride=[o.StrideH(), o.StrideW()],
                    filter=[o.FilterHeight(), o.FilterWidth()], act=_ACT[o.FusedActivationFunction()])
    return {}


def _dense(tflite, t, values: np.ndarray) -> np.ndarray:
    """A sparse constant made dense: the leading dimensions dense, the last one compressed (CSR),
    the only layout these models use (anything else is refused)."""
    sp = t.Sparsity()
    shape = [int(x) for x in t.ShapeAsNumpy()]
    dims = [sp.DimMetadata(d) for d in range(sp.DimMetadataLength())]
    if (sp.BlockMapLength() or list(sp.TraversalOrderAsNumpy()) != list(range(len(shape)))
            or any(d.Format() != 0 for d in dims[:-1]) or dims[-1].Format() != 1):
        raise ValueError(f"{t.Name().decode()}: a sparse layout this converter does not read")

    def vec(kind, table):
        cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
        v = cls()
        v.Init(table.Bytes, table.Pos)
        return v.ValuesAsNumpy().astype(np.int64)

    last = dims[-1]
    seg = vec(last.ArraySegmentsType(), last.ArraySegments())
    idx = vec(last.ArrayIndicesType(), last.ArrayIndices())
    out = np.zeros((int(np.prod(shape[:-1])), shape[-1]), values.dtype)
    for r in range(len(seg) - 1):
        out[r, idx[seg[r]:seg[r + 1]]] = values[seg[r]:seg[r + 1]]
    return out.reshape(shape)


def convert(path: Path) -> tuple[dict, dict]:
    """(graph, constants) of one .tflite file."""
    import tflite
    from flatbuffers import flexbuffers

    buf = path.read_bytes()
    m = tflite.Model.GetRootAsModel(buf, 0)
    if m.SubgraphsLength() != 1:
        raise ValueError(f"{path}: {m.SubgraphsLength()} subgraphs, expected 1")
    g = m.Subgraphs(0)
    consts, shapes = {}, {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        shapes[i] = [int(x) for x in t.ShapeAsNumpy()] if t.ShapeLength() else []
        data = m.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() else 0
        if not isinstance(data, int) and data.size:
            values = np.frombuffer(data.tobytes(), _TYPES[t.Type()])
            consts[i] = _dense(tflite, t, values) if t.Sparsity() is not None else values.reshape(shapes[i])
    ops = []
    for j in range(g.OperatorsLength()):
        op = g.Operators(j)
        oc = m.OperatorCodes(op.OpcodeIndex())
        ins, outs = [int(x) for x in op.InputsAsNumpy()], [int(x) for x in op.OutputsAsNumpy()]
        if oc.CustomCode():
            name = oc.CustomCode().decode()
            raw = bytes(op.CustomOptionsAsNumpy()) if op.CustomOptionsLength() else b""
            if name == "Convolution2DTransposeBias":  # a TfLiteTransposeConvParams struct, not a flexbuffer
                pad, sw, sh = np.frombuffer(raw[:12], "<i4")
                opts = dict(padding={1: "same", 2: "valid"}[int(pad)], stride=[int(sh), int(sw)])
            else:
                opts = flexbuffers.Loads(raw) if len(raw) > 2 else {}
                opts = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in opts.items()}
        else:
            name = tflite.opcode2name(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))
            opts = _options(tflite, name, op)
        if name in ("DEQUANTIZE", "DENSIFY") and ins[0] in consts:  # fp16 weights: kept fp16, widened on load
            consts[outs[0]] = consts.pop(ins[0])
            continue
        ops.append(dict(op=name, inputs=ins, outputs=outs, options=opts))
    graph = dict(ops=ops, inputs=[int(x) for x in g.InputsAsNumpy()], outputs=[int(x) for x in g.OutputsAsNumpy()],
                 output_names=[g.Tensors(int(x)).Name().decode() for x in g.OutputsAsNumpy()],
                 shapes={str(k): v for k, v in shapes.items()})
    used = {i for o in ops for i in o["inputs"]}
    return graph, {k: v for k, v in consts.items() if k in used}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "glvd_core" / "assets" / "mediapipe_models.npz"))
    a = ap.parse_args(argv)
    import mediapipe

    base = Path(mediapipe.__file__).resolve().parent
    arrays = {}
    for name, rel in MODELS.items():
        graph, consts = convert(base / rel)
        arrays[f"{name}/graph"] = np.frombuffer(json.dumps(graph).encode(), np.uint8)
        for k, v in consts.items():
            arrays[f"{name}/{k}"] = v
        print(f"{name}: {len(graph['ops'])} operators, {len(consts)} constants")
    arrays["mediapipe_version"] = np.frombuffer(mediapipe.__version__.encode(), np.uint8)
    out = Path(a.out)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
