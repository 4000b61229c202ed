"""Turn the two published FaceNet weight files into our version-independent arrays.

Neither source file is ever executed or deserialised as a model: the Keras HDF5 file is read as
plain datasets with h5py (its Lambda layers hold marshalled Python code, which we never touch), and
the frozen graph is parsed as a protobuf and only its constants are read.  Every array is
assigned to a layer of `network.conv_layers()` by name with a shape check; anything missing,
misshaped or left over stops the conversion.
"""
from __future__ import annotations

import io
import json

import numpy as np

from . import network
from .errors import WeightsError

# What the Keras conversion of FaceNet 20170512-110547 must contain.
KERAS_ARRAY_COUNT = 490
KERAS_PARAMETER_COUNT = 22_808_144


def fold_batch_norm(kernel, conv_bias, beta, mean, variance, epsilon, gamma=None):
    """Fold inference-mode batch norm into the preceding linear layer: returns (kernel, bias)."""
    scale = (1.0 if gamma is None else gamma) / np.sqrt(variance.astype(np.float64) + epsilon)
    folded_kernel = kernel.astype(np.float64) * scale  # broadcasts over the output-channel axis
    folded_bias = beta + (conv_bias - mean) * scale
    return folded_kernel.astype(np.float32), folded_bias.astype(np.float32)


def _fail(source: str, message: str):
    raise WeightsError(f"{source}: {message}; the file does not match the FaceNet network we expect")


def from_keras_h5(data: bytes, embedding_size: int, source: str = "facenet_keras.h5") -> dict[str, np.ndarray]:
    """Read the Keras 2.1.2 save of FaceNet and return batch-norm-folded arrays by our layer names."""
    import h5py

    with h5py.File(io.BytesIO(data), "r") as h5:
        config = json.loads(h5.attrs["model_config"])
        layer_configs = {layer["name"]: layer for layer in config["config"]["layers"]}
        weights = h5["model_weights"]

        def layer_arrays(name: str) -> dict[str, np.ndarray]:
            if name not in weights:
                _fail(source, f"layer {name} is missing")
            group = weights[name]
            out = {}
            for weight_name in group.attrs["weight_names"]:
                weight_name = weight_name.decode() if isinstance(weight_name, bytes) else str(weight_name)
                short = weight_name.split("/")[-1].split(":")[0]
                out[short] = np.asarray(group[weight_name], dtype=np.float32)
            return out

        used_arrays = 0
        used_params = 0
        result: dict[str, np.ndarray] = {}

        def take(name: str) -> dict[str, np.ndarray]:
            nonlocal used_arrays, used_params
            arrays = layer_arrays(name)
            used_arrays += len(arrays)
            used_params += sum(a.size for a in arrays.values())
            return arrays

        for layer in network.conv_layers().values():
            cfg = layer_configs.get(layer.name, {}).get("config")
            if cfg is None:
                _fail(source, f"layer {layer.name} is missing from the model config")
            described = (tuple(cfg["kernel_size"]), tuple(cfg["strides"]), cfg["padding"].upper(), cfg["filters"])
            expected = ((layer.kh, layer.kw), (layer.stride, layer.stride), layer.padding, layer.cout)
            if described != expected:
                _fail(source, f"layer {layer.name} is {described}, expected {expected}")
            conv = take(layer.name)
            kernel = conv["kernel"]
            if kernel.shape != layer.kernel_shape:
                _fail(source, f"{layer.name} kernel has shape {kernel.shape}, expected {layer.kernel_shape}")
            if layer.relu:  # convolution + batch norm + relu
                bn_name = layer.name + "_BatchNorm"
                bn = take(bn_name)
                epsilon = layer_configs[bn_name]["config"]["epsilon"]
                kernel, bias = fold_batch_norm(kernel, 0.0, bn["beta"], bn["moving_mean"], bn["moving_variance"], epsilon)
            else:  # the residual up-projection has its own bias and no batch norm
                bias = conv["bias"]
            result[f"{layer.name}/kernel"], result[f"{layer.name}/bias"] = kernel, bias

        dense = take("Bottleneck")["kernel"]
        bn = take("Bottleneck_BatchNorm")
        epsilon = layer_configs["Bottleneck_BatchNorm"]["config"]["epsilon"]
        if dense.shape != (network.BOTTLENECK_INPUT, embedding_size):
            _fail(source, f"Bottleneck kernel has shape {dense.shape}, expected {(network.BOTTLENECK_INPUT, embedding_size)}")
        result["Bottleneck/kernel"], result["Bottleneck/bias"] = fold_batch_norm(
            dense, 0.0, bn["beta"], bn["moving_mean"], bn["moving_variance"], epsilon)

        scales = [layer_configs[n]["config"]["arguments"]["scale"] for n in layer_configs if n.endswith("_ScaleSum")]
        expected_scales = ([network.BLOCK35_SCALE] * network.BLOCK35_REPEATS + [network.BLOCK17_SCALE] * network.BLOCK17_REPEATS
                           + [network.BLOCK8_SCALE] * network.BLOCK8_REPEATS + [1.0])
        if not np.allclose(scales, expected_scales):
            _fail(source, f"residual scales are {scales}")

        total_arrays = total_params = 0

        def count(_name, obj):
            nonlocal total_arrays, total_params
            if isinstance(obj, h5py.Dataset):
                total_arrays += 1
                total_params += obj.size

        weights.visititems(count)
    if (used_arrays, used_params) != (total_arrays, total_params) or total_arrays != KERAS_ARRAY_COUNT \
            or total_params != KERAS_PARAMETER_COUNT:
        _fail(source, f"assigned {used_arrays} arrays ({used_params} parameters) of {total_arrays} ({total_params}); "
                      f"expected all of {KERAS_ARRAY_COUNT} ({KERAS_PARAMETER_COUNT})")
    return result


def _graph_prefix(layer_name: str) -> str:
    """Map a Keras-style layer name to the scope of the same layer in the original TensorFlow graph."""
    parts = layer_name.split("_")
    kind = parts[0]
    if kind in ("Block35", "Block17", "Block8"):
        index = int(parts[1])
        rest = "_".join(parts[2:])
        if rest.startswith("Branch_"):
            rest = rest[: len("Branch_0")] + "/" + rest[len("Branch_0_"):]
        if kind == "Block8" and index == network.BLOCK8_REPEATS + 1:
            scope = "Block8"
        else:
            repeat = {"Block35": "Repeat", "Block17": "Repeat_1", "Block8": "Repeat_2"}[kind]
            scope = f"{repeat}/{kind.lower()}_{index}"
        return f"InceptionResnetV1/{scope}/{rest}"
    if kind == "Mixed":
        mixed = "_".join(parts[:2])
        rest = "_".join(parts[2:])
        return f"InceptionResnetV1/{mixed}/{rest[: len('Branch_0')]}/{rest[len('Branch_0_'):]}"
    return f"InceptionResnetV1/{layer_name}"


# Constants of the frozen graph that are structure, not weights.
_STRUCTURAL_SUFFIXES = ("/axis", "/mul/x", "/shape", "/reduction_indices", "/Maximum/y", "/Reshape/shape")


def from_frozen_graph(data: bytes, embedding_size: int, source: str = "graph_final.pb") -> dict[str, np.ndarray]:
    """Read the constants of FaceNet's frozen graph (batch norm already folded) by our layer names."""
    from .engines import _import_tensorflow_quietly

    tf = _import_tensorflow_quietly()

    graph = tf.compat.v1.GraphDef()
    try:
        graph.ParseFromString(data)
    except Exception:  # protobuf raises its own DecodeError type
        _fail(source, "is not a TensorFlow GraphDef")
    consts = {n.name: n for n in graph.node if n.op == "Const"}
    nodes = {n.name: n for n in graph.node}
    used: set[str] = set()

    def const(name: str) -> np.ndarray:
        if name not in consts:
            _fail(source, f"constant {name} is missing")
        used.add(name)
        return tf.make_ndarray(consts[name].attr["value"].tensor).astype(np.float32)

    result: dict[str, np.ndarray] = {}
    for layer in network.conv_layers().values():
        prefix = _graph_prefix(layer.name)
        node = nodes.get(prefix + "/Conv2D")
        if node is None:
            _fail(source, f"node {prefix}/Conv2D is missing")
        described = (list(node.attr["strides"].list.i), node.attr["padding"].s.decode())
        if described != ([1, layer.stride, layer.stride, 1], layer.padding):
            _fail(source, f"{prefix} is {described}, expected stride {layer.stride} padding {layer.padding}")
        kernel = const(prefix + "/weights")
        bias = const(prefix + ("/Conv2D_bn_offset" if layer.relu else "/biases"))
        if kernel.shape != layer.kernel_shape or bias.shape != (layer.cout,):
            _fail(source, f"{prefix} has shapes {kernel.shape} {bias.shape}, expected {layer.kernel_shape}")
        result[f"{layer.name}/kernel"], result[f"{layer.name}/bias"] = kernel, bias

    bn = "InceptionResnetV1/Bottleneck/BatchNorm"
    dense = const("InceptionResnetV1/Bottleneck/weights")
    if dense.shape != (network.BOTTLENECK_INPUT, embedding_size):
        _fail(source, f"Bottleneck has shape {dense.shape}, expected {(network.BOTTLENECK_INPUT, embedding_size)}")
    epsilon = nodes[bn + "/cond/FusedBatchNorm_1"].attr["epsilon"].f
    result["Bottleneck/kernel"], result["Bottleneck/bias"] = fold_batch_norm(
        dense, 0.0, const(bn + "/beta"), const(bn + "/moving_mean"), const(bn + "/moving_variance"),
        epsilon, gamma=const(bn + "/Const"))

    leftover = [name for name in consts if name not in used and not name.endswith(_STRUCTURAL_SUFFIXES)
                and "__cf__" not in name]
    if leftover:
        _fail(source, f"{len(leftover)} weight constants were not assigned, for example {leftover[0]}")
    return result
