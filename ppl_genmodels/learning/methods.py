"""The training methods of :func:`ppl_genmodels.learning.train`, as plain data.

Importing this module imports neither torch nor Pyro, so that the command line can build
its ``train`` parser without them. What each method optimises is described in
:mod:`ppl_genmodels.learning.trainer`.
"""

from __future__ import annotations

__all__ = ["METHODS", "DEFAULT_PARTICLES", "LATENT_METHODS", "DEFAULT_LR"]

METHODS = ("svi", "iwae", "rws", "wake_sleep", "nvil", "mle", "gan")
"""Training methods: ELBO (svi), importance-weighted bound (iwae), reweighted wake-sleep
(rws), classic wake-sleep (wake_sleep), score-function ELBO with neural baselines (nvil),
maximum likelihood of the exact log-likelihood (mle) for the autoregressive models, which
have no latent sites, and adversarial (gan: non-saturating GAN loss plus a sleep-phase
encoder; the ``gan`` model only)."""
DEFAULT_PARTICLES = {"svi": 1, "iwae": 5, "rws": 5, "wake_sleep": 1, "nvil": 1, "mle": 1, "gan": 1}
"""K, the number of guide samples per image and step, when none is given."""
LATENT_METHODS = tuple(m for m in METHODS if m not in ("mle", "gan"))
"""The methods for the latent-variable models vae and sbn; ``mle`` is for the
autoregressive models, ``gan`` for the gan model."""
DEFAULT_LR = {"gan": 2e-4}
"""Adam learning rate per method when none is given (others: 1e-3)."""
