"""Shared inputs of the harness tests: small budgets and the regression posterior's exact
reference."""

import math

import numpy as np

from helpers import regression_data
from ppl_genmodels.reference import Reference

QUICK = {"svi": {"num_steps": 150, "num_draws": 300}, "rws": {"num_steps": 150, "num_draws": 300},
         "nuts": {"num_samples": 200, "warmup_steps": 150, "num_chains": 8}}


def regression_reference() -> Reference:
    """The exact posterior of ``regression_model`` on ``regression_data()``: conjugate
    Gaussian, prior N(0, 3^2) on w and b, noise sd 0.5 (Bishop 2006, eq. 3.53-3.54)."""
    data = regression_data()
    x, y = data["x"].double().numpy(), data["y"].double().numpy()
    design = np.stack([x, np.ones_like(x)], axis=1)
    cov = np.linalg.inv(design.T @ design / 0.5**2 + np.eye(2) / 3.0**2)
    mean = cov @ design.T @ y / 0.5**2
    return Reference.from_normal({"w": mean[0], "b": mean[1]},
                                 {"w": math.sqrt(cov[0, 0]), "b": math.sqrt(cov[1, 1])},
                                 source="closed form (conjugate Gaussian)")
