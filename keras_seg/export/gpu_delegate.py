"""Will the LiteRT GPU delegate run this ``.tflite`` whole? A static check against the delegate's rules.

On a phone, ops the GPU delegate cannot run fall back to the CPU and split the graph (by
default only the largest supported partition is delegated), so one unsupported op can cost
most of the speed-up. TensorFlow's ``tf.lite.experimental.Analyzer(gpu_compatibility=True)``
calls a graph with ARG_MAX "compatible", so keras_seg checks the flatbuffer itself, against
the rules of the delegate's model builder (``tflite/delegates/gpu/common/model_builder.cc``
in LiteRT, read for this module):

- the builtin ops its ``NewOperationParser`` maps to a parser (:data:`SUPPORTED`) and the
  highest version of each it accepts (:data:`MAX_VERSION`); ARG_MAX, ARG_MIN, SQUEEZE,
  EXPAND_DIMS, SHAPE and BATCH_TO_SPACE_ND are not among them;
- no input or output tensor of an op above rank 4 (``IsAllAllowedTensors`` refuses rank 5
  and up; ``ExtractTensorShape`` maps ranks 1-4 onto BHWC);
- runtime (non-constant) tensors in float32 or float16 only, bar the few int32 / bool uses
  it allows (a quantized model needs the delegate's quantized mode; see ``quantized``); the
  DEQUANTIZE nodes of float16 weights are folded into the delegate's kernels;
- per-op limits that matter for segmentation graphs: SOFTMAX over the last axis, RESHAPE and
  the resizes with a constant shape / size, TRANSPOSE permutations of length 2-4,
  STRIDED_SLICE without ellipsis / new-axis / shrink masks and with positive strides,
  MIRROR_PAD in REFLECT mode, bilinear resizes without both ``align_corners`` and
  ``half_pixel_centers``.

It cannot replace a run on a phone (a driver may still refuse a kernel), but it names every
node that the delegate's own checks would send back to the CPU.
"""

SUPPORTED = frozenset("""
ABS ADD ADD_N AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTHWISE_CONV_2D
DEPTH_TO_SPACE DIV EQUAL ELU EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL
HARD_SWISH LESS LESS_EQUAL LOGISTIC LOG LOGICAL_AND LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG
NOT_EQUAL ONE_HOT PACK PAD PADV2 POW REDUCE_MAX REDUCE_MIN REDUCE_PROD SUM RELU RELU6 RELU_0_TO_1 RELU_N1_TO_1
LEAKY_RELU PRELU RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX
SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB TANH TILE TRANSPOSE TRANSPOSE_CONV
UNPACK
""".split())  # fmt: skip
QUANTIZED_ONLY = frozenset({"QUANTIZE", "DEQUANTIZE"})  # with the delegate's quantized mode (allow_quant_ops)
CUSTOM = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"})
MAX_VERSION = {
    "CONCATENATION": 2, "RESHAPE": 1, "TRANSPOSE": 4, "STRIDED_SLICE": 4, "SLICE": 2, "SOFTMAX": 2,
    "RESIZE_BILINEAR": 3, "RESIZE_NEAREST_NEIGHBOR": 3, "FULLY_CONNECTED": 9, "PAD": 2, "PADV2": 2, "MIRROR_PAD": 2,
    "DEPTHWISE_CONV_2D": 6, "CONV_2D": 6, "TRANSPOSE_CONV": 3, "MUL": 3, "AVERAGE_POOL_2D": 2, "MAX_POOL_2D": 2,
    "SPACE_TO_DEPTH": 2, "GATHER": 1, "CUMSUM": 1, "ONE_HOT": 1, "PRELU": 1, "SELECT_V2": 1, "LSTM": 4, "RELU": 2,
    "RELU6": 2, "RELU_N1_TO_1": 2, "LEAKY_RELU": 2, "GELU": 2, "ADD": 2, "SUB": 2, "DIV": 2, "LOGISTIC": 2,
    "TANH": 2, "HARD_SWISH": 2, "EXP": 2, "RSQRT": 2, "SQRT": 2, "SQUARE": 2, "ABS": 2, "POW": 2, "MAXIMUM": 2,
    "MINIMUM": 2, "SQUARED_DIFFERENCE": 2, "NEG": 2, "LOG": 2, "SIN": 2, "COS": 2, "FLOOR": 2, "ELU": 2,
}  # fmt: skip
MAX_RANK = 4
# Ops whose non-float runtime tensors the delegate accepts: int32 through CAST, ONE_HOT, GATHER indices;
# bool from comparisons into CAST / SELECT, and LOGICAL_AND.
NON_FLOAT_OK = frozenset({"CAST", "ONE_HOT", "GATHER", "SELECT", "SELECT_V2", "LOGICAL_AND", "EQUAL", "NOT_EQUAL",
                          "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL"})  # fmt: skip


def check(content, quantized=False):
    """``(num_ops, issues)`` for TFLite flatbuffer bytes: how many ops the graph has, and why each node the GPU
    delegate would not take falls back (``[]``: all run on the GPU).

    ``quantized``: check as the delegate's quantized mode does (int8 / uint8 tensors, QUANTIZE and
    DEQUANTIZE allowed), for a quantized model.
    """
    from keras_seg.export.metadata import tflite_schema

    schema = tflite_schema()
    model = schema.Model.GetRootAs(content, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    floats = {"FLOAT32", "FLOAT16"} | ({"INT8", "UINT8"} if quantized else set())
    graph = model.Subgraphs(0)
    constant = _constant_tensors(model, graph)
    issues = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        reasons = _reasons(schema, name, code, op, graph, constant, types, floats, quantized)
        if reasons:
            label = f"{name} {(code.CustomCode() or b'').decode()!r}" if name == "CUSTOM" else name
            issues.append(f"{label} (op {i}): " + "; ".join(_unique(reasons)))
    return graph.OperatorsLength(), issues


def _reasons(schema, name, code, op, graph, constant, types, floats, quantized):
    """Why the delegate would refuse this node (``[]`` if it takes it)."""
    if name == "CUSTOM":
        return [] if (code.CustomCode() or b"").decode() in CUSTOM else ["a custom op without a GPU kernel"]
    if name == "DEQUANTIZE" and types.get(graph.Tensors(op.Inputs(0)).Type()) == "FLOAT16":
        return []  # a float16 weight: the delegate folds these into its float16 / float32 kernels
    if name not in SUPPORTED and not (quantized and name in QUANTIZED_ONLY):
        return ["not in the GPU delegate's op list"]
    reasons = []
    if code.Version() > MAX_VERSION.get(name, 99):
        reasons.append(f"version {code.Version()}, the delegate takes up to {MAX_VERSION[name]}")
    tensors = [op.Inputs(j) for j in range(op.InputsLength())] + [op.Outputs(j) for j in range(op.OutputsLength())]
    for t in tensors:
        if t < 0:
            continue
        tensor = graph.Tensors(t)
        rank = tensor.ShapeLength()
        if rank > MAX_RANK:
            shape = [int(tensor.Shape(k)) for k in range(rank)]
            reasons.append(f"a rank-{rank} tensor {shape} (the delegate takes up to rank {MAX_RANK})")
        kind = types.get(tensor.Type(), "?")
        if t not in constant and kind not in floats and name not in NON_FLOAT_OK:
            reasons.append(f"a {kind} runtime tensor (the delegate computes in float32 / float16"
                           + (")" if quantized else "; int8 needs its quantized mode)"))  # fmt: skip
    return reasons + _op_limits(schema, name, op, graph, constant)


def summary(num_ops, issues):
    """One line for the export report."""
    if not issues:
        return f"all {num_ops} ops supported"
    return f"{len(issues)} of {num_ops} ops fall back to the CPU: " + " | ".join(issues)


def _op_limits(schema, name, op, graph, constant):
    found = []
    runtime_inputs = [op.Inputs(j) for j in range(op.InputsLength()) if op.Inputs(j) >= 0 and op.Inputs(j) not in constant]
    if name == "SOFTMAX":
        tensor = graph.Tensors(op.Inputs(0))
        if tensor.ShapeLength() not in (0, 1, 2, 3, 4):
            found.append(f"softmax over rank {tensor.ShapeLength()}")
    if name in ("RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE", "MEAN", "PAD", "PADV2", "MIRROR_PAD",
                "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD") and len(runtime_inputs) > 1:  # fmt: skip
        found.append(f"its shape / size / axes input is computed at run time; the delegate needs a constant")
    if name == "TRANSPOSE" and op.InputsLength() > 1:
        perm = graph.Tensors(op.Inputs(1))
        length = perm.ShapeLength() and int(perm.Shape(0))
        if length not in (2, 3, 4):
            found.append(f"a permutation of {length} axes; the delegate takes 2 to 4")
    options = op.BuiltinOptions()
    if options is None:
        return found
    if name == "STRIDED_SLICE":
        o = schema.StridedSliceOptions()
        o.Init(options.Bytes, options.Pos)
        if o.EllipsisMask() or o.NewAxisMask() or o.ShrinkAxisMask():
            found.append(f"ellipsis / new-axis / shrink-axis masks are not supported")
    if name == "RESIZE_BILINEAR":
        o = schema.ResizeBilinearOptions()
        o.Init(options.Bytes, options.Pos)
        if o.AlignCorners() and o.HalfPixelCenters():
            found.append(f"align_corners and half_pixel_centers together are not supported")
    if name == "MIRROR_PAD":
        o = schema.MirrorPadOptions()
        o.Init(options.Bytes, options.Pos)
        if o.Mode() != schema.MirrorPadMode.REFLECT:
            found.append(f"only REFLECT mirror padding is supported")
    if name == "SOFTMAX":
        o = schema.SoftmaxOptions()
        o.Init(options.Bytes, options.Pos)
        if abs(o.Beta() - 1.0) > 1e-6:
            found.append(f"beta {o.Beta()} (the delegate takes 1)")
    return found


def _constant_tensors(model, graph):
    """Indices of tensors that hold data in the file (weights, shapes, axes): not computed at run time."""
    found = set()
    for t in range(graph.TensorsLength()):
        buffer = graph.Tensors(t).Buffer()
        if 0 < buffer < model.BuffersLength():
            data = model.Buffers(buffer)
            if data.DataLength() or data.Size():
                found.add(t)
    return found


def _unique(items):
    seen, kept = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            kept.append(item)
    return kept
