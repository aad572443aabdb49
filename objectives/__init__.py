"""What is minimized: objectives, their smoothing and their sharpness.

This package imports nothing else of ours (`simulate` and `analysis` build on it).
"""

from objectives import datasets, smoothing
from objectives.base import Objective, from_function
from objectives.finite_sum import FiniteSum, accuracy, example_gradient_covariance, finite_sum
from objectives.models import cnn1d, least_squares, logistic_regression, mlp
from objectives.sharpness import hessian_vector_product, hutchinson_trace, top_eigenvalue
from objectives.landscapes import rippled_quadratic, valley_2d
from objectives.quadratic import quadratic
from objectives.smoothing import penalized, smoothed
from objectives.wells import (
    SHARP_FLAT_CRITICAL_STEP_SIZE,
    SHARP_FLAT_NOISE_SCALE,
    SHARP_FLAT_STEP_SIZES,
    gaussian_wells,
    sharp_flat,
)

__all__ = [
    "Objective",
    "from_function",
    "quadratic",
    "rippled_quadratic",
    "gaussian_wells",
    "sharp_flat",
    "valley_2d",
    "smoothed",
    "penalized",
    "smoothing",
    "FiniteSum",
    "finite_sum",
    "accuracy",
    "example_gradient_covariance",
    "least_squares",
    "logistic_regression",
    "mlp",
    "cnn1d",
    "datasets",
    "hessian_vector_product",
    "hutchinson_trace",
    "top_eigenvalue",
    "SHARP_FLAT_NOISE_SCALE",
    "SHARP_FLAT_STEP_SIZES",
    "SHARP_FLAT_CRITICAL_STEP_SIZE",
]
