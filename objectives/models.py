"""Ready-made finite sums: least squares, logistic regression, a small MLP and a small 1-D CNN,
in plain JAX.

Each returns an `objectives.FiniteSum` over `(features, labels)` (float32 `(n, d)`, labels
`(n,)`); the classifiers carry `predict` (logits) for `objectives.accuracy`, and
`objective.init(seed)` gives the flat initial parameters of a seed (one chain per seed in
`simulate.run`), `objective.x_init` those the objective was built with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from objectives import validation as check
from objectives.finite_sum import FiniteSum, finite_sum

__all__ = ["cnn1d", "least_squares", "logistic_regression", "mlp"]


def _features(features, name="features") -> np.ndarray:
    a = check.float_array(name, features, ndim=(2,), allowed="a 2-D array (n_examples, n_features)")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (n_examples, n_features), got shape {a.shape}")
    return a.astype(np.float32)


def _labels(labels, n: int, n_classes) -> tuple[np.ndarray, int]:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({n},), got {y.dtype} of shape {y.shape}")
    k = int(y.max()) + 1 if n_classes is None else n_classes
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2 or y.min() < 0 or y.max() >= k:
        raise ValueError(
            f"n_classes must be an integer >= 2 covering the labels {int(y.min())}..{int(y.max())} "
            f"(labels must lie in 0..n_classes-1), got n_classes={n_classes!r}"
        )
    return y.astype(np.int32), int(k)


def _cross_entropy(logits, label):
    """-log softmax(logits)_label for one example: logsumexp(logits) - logits[label]."""
    return jax.nn.logsumexp(logits) - logits[label]


def least_squares(features, targets, *, l2: float = 0.0, name: str = "least_squares") -> FiniteSum:
    """f(w) = (1/n) sum_j (1/2) (a_j . w - y_j)^2 + (l2/2)||w||^2, w of shape `(d,)`.

    No intercept: add a column of ones to `features` for one. Gradient A^T (A w - y) / n + l2 w,
    Hessian A^T A / n + l2 I (constant). Starts at w = 0 (`x_init`, and `init(seed)` for every seed).

    **Arguments:** `features` A `(n, d)`; `targets` y `(n,)`; `l2` >= 0; `name`.
    """
    a = _features(features)
    y = check.finite_array("targets", targets, shape=(a.shape[0],)).astype(np.float32)  # one per row of features

    def loss(w, example):
        inputs, target = example
        return 0.5 * (jnp.dot(inputs, w) - target) ** 2

    return finite_sum(loss, jnp.zeros(a.shape[1], jnp.float32), (a, y), l2=l2, name=name)


def logistic_regression(
    features, labels, *, n_classes: int | None = None, l2: float = 0.0, name: str = "logistic_regression"
) -> FiniteSum:
    """Multinomial logistic regression: the mean softmax cross-entropy of the logits
    a_j W + b (W `(d, K)`, b `(K,)`), plus (l2/2)(||W||^2 + ||b||^2).

    K = 2 is binary logistic regression written as a two-class softmax. Starts at zero for every
    seed (the loss is convex; strictly so when l2 > 0). `predict` gives the logits `(K,)`.

    **Arguments:** `features` `(n, d)`; `labels` integers `(n,)` in 0..K-1; `n_classes` K
    (default max label + 1); `l2` >= 0; `name`.
    """
    a = _features(features)
    y, k = _labels(labels, a.shape[0], n_classes)
    params = {"W": jnp.zeros((a.shape[1], k), jnp.float32), "b": jnp.zeros((k,), jnp.float32)}

    def predict(p, inputs):
        return inputs @ p["W"] + p["b"]

    def loss(p, example):
        return _cross_entropy(predict(p, example[0]), example[1])

    objective = finite_sum(loss, params, (a, y), l2=l2, name=name, predict=predict)
    return objective.replace(info=objective.info + (("n_classes", k),))


_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _widths(name: str, values, note: str) -> tuple[int, ...]:
    """Layer widths: a non-empty sequence of positive integers, refused by `name` otherwise."""
    try:
        widths = tuple(values)
    except TypeError:
        widths = ()
    if not widths:
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {values!r}")
    return tuple(check.positive_int(f"{name}[{i}]", w, note=note) for i, w in enumerate(widths))


def mlp(
    features,
    labels,
    *,
    hidden=(32,),
    n_classes: int | None = None,
    activation: str = "tanh",
    l2: float = 0.0,
    seed: int = 0,
    name: str = "mlp",
) -> FiniteSum:
    """A multilayer perceptron classifier with softmax cross-entropy.

    Layers d -> hidden[0] -> ... -> K: h_0 = a, h_{l+1} = act(h_l W_l + b_l), logits the last layer
    without activation. Weights are drawn from LeCun's normal N(0, 1/fan_in), biases are zero
    (`jax.random`, key `jax.random.key(seed)` split per layer); `x_init` is the draw of `seed`,
    `objective.init(s)` that of seed s. The default on digits (64 -> 32 -> 10) has 2,410
    parameters. The parameter pytree is a list of `{"W": (m, n), "b": (n,)}`, one per layer.

    **Arguments:** `features` `(n, d)`; `labels` integers `(n,)` in 0..K-1; `hidden` the widths of
    the hidden layers; `n_classes` K (default max label + 1); `activation` `"tanh"` or `"relu"`;
    `l2` >= 0; `seed` >= 0; `name`.
    """
    a = _features(features)
    y, k = _labels(labels, a.shape[0], n_classes)
    hidden = _widths("hidden", hidden, "a layer width")
    check.one_of("activation", activation, sorted(_ACTIVATIONS))
    seed = check.seed("seed", seed)
    sizes = (a.shape[1],) + hidden + (k,)
    act = _ACTIVATIONS[activation]

    def init(s: int):
        keys = jax.random.split(jax.random.key(s), len(sizes) - 1)
        return [
            {"W": jax.random.normal(key, (m, n), jnp.float32) / np.float32(np.sqrt(m)), "b": jnp.zeros((n,), jnp.float32)}
            for key, m, n in zip(keys, sizes[:-1], sizes[1:])
        ]

    def predict(layers, inputs):
        h = inputs
        for layer in layers[:-1]:
            h = act(h @ layer["W"] + layer["b"])
        return h @ layers[-1]["W"] + layers[-1]["b"]

    def loss(layers, example):
        return _cross_entropy(predict(layers, example[0]), example[1])

    objective = finite_sum(loss, init(int(seed)), (a, y), l2=l2, name=name, predict=predict, init=init)
    return objective.replace(info=objective.info + (("n_classes", k), ("hidden", hidden), ("activation", activation)))


def _conv1d(h, kernel, bias, stride: int):
    """y[w, o] = sum_{k, c} h_pad[w stride + k, c] kernel[k, c, o] + bias[o], 'SAME' padding
    (ceil(W / stride) outputs, the padding split as in `lax.conv_general_dilated`).

    `h` `(W, C_in)`, `kernel` `(K, C_in, C_out)`, `bias` `(C_out,)`. Written as a gather of the
    windows and one einsum rather than `lax.conv_general_dilated` because `simulate.run` vmaps
    the model over chains and step sizes, which turns a convolution into a grouped one, and the
    einsum form (a batched matmul) ran faster on CPU (benchmarks/README.md, "Lab notes"). Same
    numbers (tested against `lax.conv_general_dilated`).
    """
    width, size = h.shape[0], kernel.shape[0]
    n_out = -(-width // stride)
    pad = max((n_out - 1) * stride + size - width, 0)
    padded = jnp.pad(h, ((pad // 2, pad - pad // 2), (0, 0)))
    windows = np.arange(n_out)[:, None] * stride + np.arange(size)[None, :]  # (W_out, K), static
    return jnp.einsum("wkc,kco->wo", padded[windows], kernel) + bias[None, :]


def cnn1d(
    features,
    labels,
    *,
    channels=(16, 32, 32),
    kernel_size: int = 5,
    stride: int = 2,
    n_classes: int | None = None,
    l2: float = 0.0,
    seed: int = 0,
    name: str = "cnn1d",
) -> FiniteSum:
    """A 1-D convolutional classifier with softmax cross-entropy, for signals such as MNIST-1D.

    Each input a `(L,)` is one channel, h_0 `(L, 1)`; layer l is a convolution with kernel size
    K, stride s and 'SAME' padding, h_{l+1} = relu(conv(h_l, W_l) + b_l) `(ceil(L_l / s), C_l)`;
    the logits are flatten(h_last) V + c. Weights from He's normal N(0, 2/fan_in) (fan_in K C_in
    for a convolution; LeCun's 1/fan_in for the linear layer), biases zero, keys
    `jax.random.key(seed)` split per layer; `objective.init(s)` is the draw of seed s. On
    MNIST-1D (L = 40) the default 16-32-32 channels, K = 5, s = 2 give lengths 20, 10, 5 and
    9,450 parameters. The parameter pytree is a list of `{"W", "b"}`: `(K, C_in, C_out)` for
    convolutions, `(5 C_last, n_classes)` for the linear layer.

    **Arguments:** `features` `(n, L)`; `labels` integers `(n,)` in 0..K-1; `channels` the
    widths of the convolutions (non-empty); `kernel_size` >= 1; `stride` >= 1; `n_classes`
    (default max label + 1); `l2` >= 0; `seed` >= 0; `name`.
    """
    a = _features(features)
    y, k = _labels(labels, a.shape[0], n_classes)
    channels = _widths("channels", channels, "a layer's channels")
    kernel_size = check.positive_int("kernel_size", kernel_size)
    stride = check.positive_int("stride", stride)
    seed = check.seed("seed", seed)
    length = a.shape[1]
    for _ in channels:
        length = -(-length // stride)
    widths = (1,) + channels

    def init(s: int):
        keys = jax.random.split(jax.random.key(s), len(channels) + 1)
        layers = [
            {
                "W": jax.random.normal(key, (kernel_size, c_in, c_out), jnp.float32) * np.float32(np.sqrt(2.0 / (kernel_size * c_in))),
                "b": jnp.zeros((c_out,), jnp.float32),
            }
            for key, c_in, c_out in zip(keys[:-1], widths[:-1], widths[1:])
        ]
        fan_in = length * channels[-1]
        head = jax.random.normal(keys[-1], (fan_in, k), jnp.float32) / np.float32(np.sqrt(fan_in))
        return layers + [{"W": head, "b": jnp.zeros((k,), jnp.float32)}]

    def predict(layers, inputs):
        h = inputs[:, None]
        for layer in layers[:-1]:
            h = jax.nn.relu(_conv1d(h, layer["W"], layer["b"], stride))
        return h.reshape(-1) @ layers[-1]["W"] + layers[-1]["b"]

    def loss(layers, example):
        return _cross_entropy(predict(layers, example[0]), example[1])

    objective = finite_sum(loss, init(int(seed)), (a, y), l2=l2, name=name, predict=predict, init=init)
    info = (("n_classes", k), ("channels", channels), ("kernel_size", kernel_size), ("stride", stride))
    return objective.replace(info=objective.info + info)
