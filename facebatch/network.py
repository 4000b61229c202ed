"""FaceNet's Inception-ResNet-v1, written as plain TensorFlow ops over a dict of arrays.

Both weight sources we support (a Keras 2.1.2 HDF5 save and a TensorFlow frozen graph) are the
same network from davidsandberg/facenet.  We describe it once here, as data (`conv_layers`), and
run it with `tf.nn` ops.  That keeps the stored weights free of any Keras or TensorFlow
serialisation format: a `.npz` of named float32 arrays is all a model is.

Batch normalisation is folded into the preceding convolution when weights are converted, so
every convolution here is `conv + bias (+ relu)`: fewer ops per face and nothing version-specific.
"""
from __future__ import annotations

from dataclasses import dataclass

INPUT_SIZE = 160  # both models take 160x160 RGB crops

# Residual scales, as in the original slim code (block35 0.17, block17 0.10, block8 0.20).
BLOCK35_SCALE, BLOCK17_SCALE, BLOCK8_SCALE = 0.17, 0.10, 0.20
BLOCK35_REPEATS, BLOCK17_REPEATS, BLOCK8_REPEATS = 5, 10, 5
BOTTLENECK_INPUT = 1792


@dataclass(frozen=True)
class ConvLayer:
    """One convolution: kernel (kh, kw, cin, cout), stride and padding; always with a bias after folding."""

    name: str
    kh: int
    kw: int
    cin: int
    cout: int
    stride: int = 1
    padding: str = "SAME"
    relu: bool = True

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.kh, self.kw, self.cin, self.cout)


def _block35(i: int) -> list[ConvLayer]:
    p = f"Block35_{i}_"
    return [
        ConvLayer(p + "Branch_0_Conv2d_1x1", 1, 1, 256, 32),
        ConvLayer(p + "Branch_1_Conv2d_0a_1x1", 1, 1, 256, 32),
        ConvLayer(p + "Branch_1_Conv2d_0b_3x3", 3, 3, 32, 32),
        ConvLayer(p + "Branch_2_Conv2d_0a_1x1", 1, 1, 256, 32),
        ConvLayer(p + "Branch_2_Conv2d_0b_3x3", 3, 3, 32, 32),
        ConvLayer(p + "Branch_2_Conv2d_0c_3x3", 3, 3, 32, 32),
        ConvLayer(p + "Conv2d_1x1", 1, 1, 96, 256, relu=False),
    ]


def _block17(i: int) -> list[ConvLayer]:
    p = f"Block17_{i}_"
    return [
        ConvLayer(p + "Branch_0_Conv2d_1x1", 1, 1, 896, 128),
        ConvLayer(p + "Branch_1_Conv2d_0a_1x1", 1, 1, 896, 128),
        ConvLayer(p + "Branch_1_Conv2d_0b_1x7", 1, 7, 128, 128),
        ConvLayer(p + "Branch_1_Conv2d_0c_7x1", 7, 1, 128, 128),
        ConvLayer(p + "Conv2d_1x1", 1, 1, 256, 896, relu=False),
    ]


def _block8(i: int) -> list[ConvLayer]:
    p = f"Block8_{i}_"
    return [
        ConvLayer(p + "Branch_0_Conv2d_1x1", 1, 1, 1792, 192),
        ConvLayer(p + "Branch_1_Conv2d_0a_1x1", 1, 1, 1792, 192),
        ConvLayer(p + "Branch_1_Conv2d_0b_1x3", 1, 3, 192, 192),
        ConvLayer(p + "Branch_1_Conv2d_0c_3x1", 3, 1, 192, 192),
        ConvLayer(p + "Conv2d_1x1", 1, 1, 384, 1792, relu=False),
    ]


def conv_layers() -> dict[str, ConvLayer]:
    """Every convolution of the network, by the layer names of the Keras conversion."""
    layers = [
        ConvLayer("Conv2d_1a_3x3", 3, 3, 3, 32, stride=2, padding="VALID"),
        ConvLayer("Conv2d_2a_3x3", 3, 3, 32, 32, padding="VALID"),
        ConvLayer("Conv2d_2b_3x3", 3, 3, 32, 64),
        ConvLayer("Conv2d_3b_1x1", 1, 1, 64, 80, padding="VALID"),
        ConvLayer("Conv2d_4a_3x3", 3, 3, 80, 192, padding="VALID"),
        ConvLayer("Conv2d_4b_3x3", 3, 3, 192, 256, stride=2, padding="VALID"),
    ]
    for i in range(1, BLOCK35_REPEATS + 1):
        layers += _block35(i)
    layers += [
        ConvLayer("Mixed_6a_Branch_0_Conv2d_1a_3x3", 3, 3, 256, 384, stride=2, padding="VALID"),
        ConvLayer("Mixed_6a_Branch_1_Conv2d_0a_1x1", 1, 1, 256, 192),
        ConvLayer("Mixed_6a_Branch_1_Conv2d_0b_3x3", 3, 3, 192, 192),
        ConvLayer("Mixed_6a_Branch_1_Conv2d_1a_3x3", 3, 3, 192, 256, stride=2, padding="VALID"),
    ]
    for i in range(1, BLOCK17_REPEATS + 1):
        layers += _block17(i)
    layers += [
        ConvLayer("Mixed_7a_Branch_0_Conv2d_0a_1x1", 1, 1, 896, 256),
        ConvLayer("Mixed_7a_Branch_0_Conv2d_1a_3x3", 3, 3, 256, 384, stride=2, padding="VALID"),
        ConvLayer("Mixed_7a_Branch_1_Conv2d_0a_1x1", 1, 1, 896, 256),
        ConvLayer("Mixed_7a_Branch_1_Conv2d_1a_3x3", 3, 3, 256, 256, stride=2, padding="VALID"),
        ConvLayer("Mixed_7a_Branch_2_Conv2d_0a_1x1", 1, 1, 896, 256),
        ConvLayer("Mixed_7a_Branch_2_Conv2d_0b_3x3", 3, 3, 256, 256),
        ConvLayer("Mixed_7a_Branch_2_Conv2d_1a_3x3", 3, 3, 256, 256, stride=2, padding="VALID"),
    ]
    # The last block8 ("Block8_6") has scale 1.0 and no activation, as in the original network.
    for i in range(1, BLOCK8_REPEATS + 2):
        layers += _block8(i)
    return {layer.name: layer for layer in layers}


def expected_array_shapes(embedding_size: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every array of a converted (batch-norm-folded) model."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in conv_layers().values():
        shapes[f"{layer.name}/kernel"] = layer.kernel_shape
        shapes[f"{layer.name}/bias"] = (layer.cout,)
    shapes["Bottleneck/kernel"] = (BOTTLENECK_INPUT, embedding_size)
    shapes["Bottleneck/bias"] = (embedding_size,)
    return shapes


def build_forward(arrays: dict, embedding_size: int):
    """Return a compiled `tf.function` mapping standardised NHWC float32 crops to L2-normalised embeddings."""
    import tensorflow as tf

    layers = conv_layers()
    expected = expected_array_shapes(embedding_size)
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ValueError(f"weights do not fit the network: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != shape:
            raise ValueError(f"weights do not fit the network: {name} has shape {arrays[name].shape}, expected {shape}")
    consts = {name: tf.constant(value, dtype=tf.float32) for name, value in arrays.items()}

    def conv(name, x):
        spec = layers[name]
        y = tf.nn.conv2d(x, consts[name + "/kernel"], strides=spec.stride, padding=spec.padding)
        y = tf.nn.bias_add(y, consts[name + "/bias"])
        return tf.nn.relu(y) if spec.relu else y

    def max_pool(x):
        return tf.nn.max_pool2d(x, ksize=3, strides=2, padding="VALID")

    def residual(prefix, x, branches, scale, relu=True):
        up = conv(prefix + "Conv2d_1x1", tf.concat(branches, axis=3))
        y = x + scale * up
        return tf.nn.relu(y) if relu else y

    def block35(i, x):
        p = f"Block35_{i}_"
        b0 = conv(p + "Branch_0_Conv2d_1x1", x)
        b1 = conv(p + "Branch_1_Conv2d_0b_3x3", conv(p + "Branch_1_Conv2d_0a_1x1", x))
        b2 = conv(p + "Branch_2_Conv2d_0a_1x1", x)
        b2 = conv(p + "Branch_2_Conv2d_0c_3x3", conv(p + "Branch_2_Conv2d_0b_3x3", b2))
        return residual(p, x, [b0, b1, b2], BLOCK35_SCALE)

    def block17(i, x):
        p = f"Block17_{i}_"
        b0 = conv(p + "Branch_0_Conv2d_1x1", x)
        b1 = conv(p + "Branch_1_Conv2d_0a_1x1", x)
        b1 = conv(p + "Branch_1_Conv2d_0c_7x1", conv(p + "Branch_1_Conv2d_0b_1x7", b1))
        return residual(p, x, [b0, b1], BLOCK17_SCALE)

    def block8(i, x, scale=BLOCK8_SCALE, relu=True):
        p = f"Block8_{i}_"
        b0 = conv(p + "Branch_0_Conv2d_1x1", x)
        b1 = conv(p + "Branch_1_Conv2d_0a_1x1", x)
        b1 = conv(p + "Branch_1_Conv2d_0c_3x1", conv(p + "Branch_1_Conv2d_0b_1x3", b1))
        return residual(p, x, [b0, b1], scale, relu)

    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)])
    def forward(x):
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = conv(name, x)
        x = max_pool(x)
        for name in ("Conv2d_3b_1x1", "Conv2d_4a_3x3", "Conv2d_4b_3x3"):
            x = conv(name, x)
        for i in range(1, BLOCK35_REPEATS + 1):
            x = block35(i, x)
        x = tf.concat(
            [
                conv("Mixed_6a_Branch_0_Conv2d_1a_3x3", x),
                conv("Mixed_6a_Branch_1_Conv2d_1a_3x3",
                     conv("Mixed_6a_Branch_1_Conv2d_0b_3x3", conv("Mixed_6a_Branch_1_Conv2d_0a_1x1", x))),
                max_pool(x),
            ],
            axis=3,
        )
        for i in range(1, BLOCK17_REPEATS + 1):
            x = block17(i, x)
        x = tf.concat(
            [
                conv("Mixed_7a_Branch_0_Conv2d_1a_3x3", conv("Mixed_7a_Branch_0_Conv2d_0a_1x1", x)),
                conv("Mixed_7a_Branch_1_Conv2d_1a_3x3", conv("Mixed_7a_Branch_1_Conv2d_0a_1x1", x)),
                conv("Mixed_7a_Branch_2_Conv2d_1a_3x3",
                     conv("Mixed_7a_Branch_2_Conv2d_0b_3x3", conv("Mixed_7a_Branch_2_Conv2d_0a_1x1", x))),
                max_pool(x),
            ],
            axis=3,
        )
        for i in range(1, BLOCK8_REPEATS + 1):
            x = block8(i, x)
        x = block8(BLOCK8_REPEATS + 1, x, scale=1.0, relu=False)
        x = tf.reduce_mean(x, axis=[1, 2])
        x = tf.matmul(x, consts["Bottleneck/kernel"]) + consts["Bottleneck/bias"]
        return tf.math.l2_normalize(x, axis=1, epsilon=1e-10)

    return forward
