"""NUTS reproduces the posteriordb reference of eight schools (non-centred)."""

import math

from ppl_genmodels.diagnostics import parameter_summary
from ppl_genmodels.infer import NUTS
from ppl_genmodels.models import get_model


def test_nuts_matches_posteriordb_means():
    spec = get_model("eight_schools")
    posterior = spec.posterior()
    reference = spec.reference()
    idata = NUTS(num_samples=250, warmup_steps=300, num_chains=16, target_accept_prob=0.9).run(
        posterior, seed=0, progress=False
    ).idata
    summary = parameter_summary(idata)
    for name in ("mu", "tau"):
        # both sides are Monte Carlo estimates: combine their standard errors
        tolerance = 4 * math.hypot(summary.loc[name, "mcse_mean"], reference.mcse_mean[name])
        assert abs(summary.loc[name, "mean"] - reference.mean[name]) < tolerance, (
            name, summary.loc[name, "mean"], reference.mean[name], tolerance)
    assert summary["r_hat"].max() < 1.01, summary["r_hat"].max()


def test_reference_carries_provenance():
    reference = get_model("eight_schools").reference()
    assert "posteriordb" in reference.source and "posteriordb" in reference.citation
    assert abs(reference.mean["mu"] - 4.41) < 0.01 and abs(reference.mean["tau"] - 3.60) < 0.01
    assert set(reference.mean) == {"mu", "tau", *(f"theta[{j}]" for j in range(8))}
    assert len(reference.draws["mu"]) == 1000
