"""The harness: run engines on one posterior, compare them, write the report."""

from .compare import Comparison, compare

__all__ = ["compare", "Comparison"]
