"""Learning theta of image models (VAE, sigmoid belief net) and evaluating them.

- :mod:`.objectives`: per-image ELBO, IWAE, RWS and wake-sleep losses on Pyro primitives;
- :mod:`.trainer`: ``train(...)`` with checkpoints and resume;
- :mod:`.evaluate`: ``log_likelihood(...)`` (importance-weighted bound, nats per image).
"""

from .evaluate import LogLikelihood, log_likelihood
from .trainer import (METHODS, TrainConfig, TrainedRun, load_run, posterior_from_checkpoint,
                      posterior_from_run, train)

__all__ = ["METHODS", "LogLikelihood", "TrainConfig", "TrainedRun", "load_run", "log_likelihood",
           "posterior_from_checkpoint", "posterior_from_run", "train"]
