"""Each engine against the closed-form normal-normal posterior (table-driven, as Pyro's
tests/infer/test_inference.py).

Tolerances are 4 standard errors. NUTS: ArviZ's MCSE of the mean and of the sd (from the
bulk ESS). VI engines: the draws are iid from q, so the standard error of the mean is
sd / sqrt(num_draws) and of the sd is sd / sqrt(2 num_draws); to that we add in quadrature
a fixed allowance of 5% of the posterior sd for the stationary noise of the stochastic
optimiser (the exact posterior is in the guide family, so there is no bias to allow for).
"""

import math

import numpy as np
import pytest

from ppl_genmodels.diagnostics import flat_draws, parameter_summary
from ppl_genmodels.infer import NUTS, RWS, SVI
from ppl_genmodels.models import get_model
from ppl_genmodels.models.normal_normal import closed_form

OPTIMISER_ALLOWANCE = 0.05  # in posterior sds

ENGINES = [
    pytest.param(SVI(num_steps=1500, num_draws=2000), id="svi-trace"),
    pytest.param(SVI(num_steps=1500, elbo="meanfield", num_draws=2000), id="svi-meanfield"),
    pytest.param(RWS(num_steps=1500, num_draws=2000), id="rws-wake"),
    pytest.param(RWS(num_steps=1500, insomnia=0.5, num_draws=2000), id="rws-wake-sleep"),
    pytest.param(NUTS(num_samples=1000, warmup_steps=300, num_chains=2), id="nuts"),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_moments_match_closed_form(engine):
    posterior = get_model("normal_normal").posterior()
    idata = engine.run(posterior, seed=0, progress=False).idata
    mean, sd = closed_form(posterior.data["x"])
    summary = parameter_summary(idata)
    draws = flat_draws(idata)
    for i in range(len(mean)):
        name = f"loc[{i}]"
        n = draws[name].size
        if engine.name == "nuts":
            se_mean, se_sd = summary.loc[name, "mcse_mean"], summary.loc[name, "mcse_sd"]
        else:
            se_mean = math.hypot(sd[i] / math.sqrt(n), OPTIMISER_ALLOWANCE * sd[i])
            se_sd = math.hypot(sd[i] / math.sqrt(2 * n), OPTIMISER_ALLOWANCE * sd[i])
        assert abs(summary.loc[name, "mean"] - mean[i]) < 4 * se_mean, (name, summary.loc[name], mean[i])
        assert abs(summary.loc[name, "sd"] - sd[i]) < 4 * se_sd, (name, summary.loc[name], sd[i])
    if engine.name == "nuts":
        assert summary["r_hat"].max() < 1.01
        assert not idata.sample_stats["diverging"].values.any()
    else:
        # An exact guide has bounded importance weights: small PSIS k-hat.
        from ppl_genmodels.diagnostics import importance_diagnostics

        diag = importance_diagnostics(idata.sample_stats["log_weight"].values)
        assert diag["k_hat"] < 0.5
        # ELBO <= log p(x) <= E[IW bound]; both close to log p(x) for an exact guide.
        assert diag["elbo"] <= diag["log_evidence"] + 4 * diag["log_evidence_se"]
        assert np.isfinite(diag["elbo_se"])
