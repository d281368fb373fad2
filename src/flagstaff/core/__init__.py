"""
The compiled evaluation core: hashing, comparators and the evaluator in C,
the config compiler and the evaluation API in Cython.
"""

from ._core import Config, EvaluationDetails, User

__all__ = ("Config", "EvaluationDetails", "User")
