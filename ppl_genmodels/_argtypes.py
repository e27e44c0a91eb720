"""argparse ``type`` functions of the command line: numbers checked against a range, so a
bad ``--threads 0`` or ``--seed -1`` ends the command with status 2 before any work (no
torch or Pyro import)."""

from __future__ import annotations

import argparse

def _number(kind, minimum=None, above=None, below=None, maximum=None, what=""):
    """An argparse ``type``: ``kind`` (int or float) checked against a range, so that a bad
    value ends the command with status 2 and ``argument --x: ...`` before any work."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        ok = (value == value and abs(value) != float("inf")
              and (minimum is None or value >= minimum) and (above is None or value > above)
              and (below is None or value < below) and (maximum is None or value <= maximum))
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type in some messages
    return parse


_POSITIVE = _number(int, minimum=1, what="an integer >= 1")
_COUNT = _number(int, minimum=0, what="an integer >= 0")
_SEED = _number(int, minimum=0, what="an integer >= 0 (a seed)")
_POSITIVE_FLOAT = _number(float, above=0, what="a number > 0")
_FRACTION = _number(float, above=0, below=1, what="a number in (0, 1)")
_UNIT = _number(float, minimum=0, maximum=1, what="a number in [0, 1]")
