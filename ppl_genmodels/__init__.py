"""ppl_genmodels: how good is my variational posterior, and what does MCMC say?

Run SVI, reweighted wake-sleep and NUTS on the same posterior p(z | x, theta) of a Pyro
model/guide pair and compare them with ArviZ diagnostics.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Posterior": "ppl_genmodels.posterior",
    "Reference": "ppl_genmodels.reference",
    "compare": "ppl_genmodels.harness.compare",
    "Comparison": "ppl_genmodels.harness.compare",
    "SVI": "ppl_genmodels.infer",
    "RWS": "ppl_genmodels.infer",
    "NUTS": "ppl_genmodels.infer",
    "train": "ppl_genmodels.learning",
    "load_run": "ppl_genmodels.learning",
    "log_likelihood": "ppl_genmodels.learning",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    # Lazy: `import pyro, arviz` costs seconds; `ppl-genmodels list` should not pay it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ppl_genmodels' has no attribute {name!r}")
