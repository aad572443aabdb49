"""What is minimized: objectives, their smoothing and their sharpness.

This package imports nothing else of ours (`simulate` and `analysis` build on it).
"""

from objectives.base import Objective, from_function
from objectives.quadratic import quadratic

__all__ = ["Objective", "from_function", "quadratic"]
