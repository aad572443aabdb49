"""Datasets for the small-network checks: a synthetic teacher-student task, scikit-learn's
bundled digits and MNIST-1D (generated procedurally). Nothing is downloaded."""

from __future__ import annotations

import dataclasses
import random

import numpy as np

from objectives import validation as check

__all__ = ["Dataset", "digits", "mnist1d", "teacher_student"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """`train` and `test` are `(inputs, labels)`: float32 `(n, d)` and int32 `(n,)` NumPy arrays."""

    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    n_classes: int
    name: str


def teacher_student(
    n_train: int = 1000,
    n_test: int = 1000,
    *,
    n_features: int = 20,
    n_classes: int = 4,
    teacher_hidden: int = 16,
    label_noise: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """Inputs N(0, I_d); labels the argmax of a random tanh teacher MLP (d -> teacher_hidden -> K,
    N(0, 1/fan_in) weights). A fraction `label_noise` of the TRAINING labels, chosen at random, is
    replaced by a uniformly random class (which may equal the true one); test labels are clean,
    so test accuracy measures how well the teacher is recovered. Deterministic given `seed`."""
    n_train, n_test = check.positive_int("n_train", n_train), check.positive_int("n_test", n_test)
    n_features, n_classes = check.positive_int("n_features", n_features), check.integer("n_classes", n_classes, lo=2)
    teacher_hidden = check.positive_int("teacher_hidden", teacher_hidden)
    label_noise = check.probability("label_noise", label_noise)
    seed = check.seed("seed", seed)
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((n_features, teacher_hidden)) / np.sqrt(n_features)
    w2 = rng.standard_normal((teacher_hidden, n_classes)) / np.sqrt(teacher_hidden)
    inputs = rng.standard_normal((n_train + n_test, n_features))
    labels = np.argmax(np.tanh(inputs @ w1) @ w2, axis=1)
    noisy = rng.random(n_train) < label_noise
    train_labels = np.where(noisy, rng.integers(0, n_classes, n_train), labels[:n_train])
    return Dataset(
        train=(inputs[:n_train].astype(np.float32), train_labels.astype(np.int32)),
        test=(inputs[n_train:].astype(np.float32), labels[n_train:].astype(np.int32)),
        n_classes=n_classes,
        name="teacher_student",
    )


def digits(test_fraction: float = 0.25, *, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; shipped inside the package,
    never fetched), pixels scaled to [0, 1] (divided by 16), split at random (seeded) into
    train and test with `test_fraction` of the images in test, each class split in proportion."""
    test_fraction = check.probability("test_fraction", test_fraction, closed=False)
    seed = check.seed("seed", seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "digits() needs scikit-learn, the optional extra 'nn': pip install 'asgd-smoothing[nn]' "
            "(make test installs it)"
        ) from None
    bunch = load_digits()
    inputs, labels = bunch.data.astype(np.float32) / 16.0, bunch.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    test = np.zeros(labels.size, bool)
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        test[members[: int(round(test_fraction * members.size))]] = True
    return Dataset(train=(inputs[~test], labels[~test]), test=(inputs[test], labels[test]), n_classes=10, name="digits")


def mnist1d(n_samples: int = 5000, *, train_fraction: float = 0.8, seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020): 10 classes of 1-D signals of length 40, each a digit's template
    padded, translated, scaled, sheared, with correlated and i.i.d. noise added.

    Built by the package's own generator, `mnist1d.data.make_dataset` (the `mnist1d` package,
    optional extra 'nn'), never downloaded; with the defaults it is the dataset of the paper
    (4,000 train and 1,000 test signals, seed 42). Exactly n_samples / 10 signals per class,
    shuffled, the first `train_fraction` of them the training set. Standardized as the generator
    does it: (x - mean) / std with the mean and standard deviation of all the signals (one pair
    of numbers, not per feature). Deterministic given `seed`; the generator seeds NumPy's and
    Python's global random state, which this function restores afterwards.

    **Arguments:** `n_samples` a positive multiple of 10; `train_fraction` in (0, 1), leaving at
    least one signal on each side; `seed` >= 0.

    **Returns:** a `Dataset`: float32 inputs `(n, 40)`, int32 labels `(n,)` in 0..9.
    """
    n_samples = check.positive_int("n_samples", n_samples)
    if n_samples % 10:
        raise ValueError(f"n_samples must be a positive multiple of 10 (the same number of signals per class), got {n_samples}")
    train_fraction = check.probability("train_fraction", train_fraction, closed=False)
    n_train = int(n_samples * train_fraction)
    if not 1 <= n_train < n_samples:
        raise ValueError(f"train_fraction={train_fraction} leaves {n_train} of n_samples={n_samples} signals for training; both sides need one")
    seed = check.seed("seed", seed)
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ImportError(
            "mnist1d() needs the mnist1d package, the optional extra 'nn': pip install 'asgd-smoothing[nn]' "
            "(make test installs it)"
        ) from None
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = n_samples, train_fraction, seed
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:  # make_dataset seeds the global generators: leave them as they were
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return Dataset(
        train=(data["x"].astype(np.float32), data["y"].astype(np.int32)),
        test=(data["x_test"].astype(np.float32), data["y_test"].astype(np.int32)),
        n_classes=10,
        name="mnist1d",
    )
