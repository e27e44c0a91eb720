"""Learning theta of image models (VAE, sigmoid belief net) and evaluating them.

- :mod:`.methods`: the training methods, as plain data (no torch);
- :mod:`.objectives`: per-image ELBO, IWAE, RWS and wake-sleep losses on Pyro primitives;
- :mod:`.trainer`: ``train(...)`` with checkpoints and resume, ``load_run`` and the posterior
  of a trained run at fixed theta;
- :mod:`.evaluate`: ``log_likelihood(...)`` (importance-weighted bound, nats per image);
- :mod:`.ais`: ``annealed_importance_sampling(...)`` (AIS with HMC; reverse runs for BDMC);
- :mod:`.vae_digits`: the built-in ``vae_digits`` model, the VAE trained here on digits.

The names below are imported on first use, so that ``learning.methods`` is importable
without torch and Pyro.
"""

from __future__ import annotations

from .methods import METHODS

_LAZY = {
    "AISResult": "ppl_genmodels.learning.ais",
    "annealed_importance_sampling": "ppl_genmodels.learning.ais",
    "LogLikelihood": "ppl_genmodels.learning.evaluate",
    "log_likelihood": "ppl_genmodels.learning.evaluate",
    "TrainConfig": "ppl_genmodels.learning.trainer",
    "TrainedRun": "ppl_genmodels.learning.trainer",
    "load_run": "ppl_genmodels.learning.trainer",
    "posterior_from_checkpoint": "ppl_genmodels.learning.trainer",
    "posterior_from_run": "ppl_genmodels.learning.trainer",
    "train": "ppl_genmodels.learning.trainer",
}

__all__ = ["METHODS", *sorted(_LAZY)]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ppl_genmodels.learning' has no attribute {name!r}")
