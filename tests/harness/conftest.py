"""One small comparison shared by the harness tests (running the engines is the slow part)."""

import pytest

from harness_data import QUICK
from helpers import regression_data, regression_guide, regression_model
from ppl_genmodels import Posterior, compare


@pytest.fixture(scope="session")
def regression_comparison():
    """svi, rws and nuts on the regression posterior, without a reference (baseline NUTS).
    Tests must not modify it; build a new ``Comparison`` from its ``idata`` instead."""
    posterior = Posterior(regression_model, regression_guide, regression_data(), name="regression")
    return compare(posterior, engine_config=QUICK, progress=False)
