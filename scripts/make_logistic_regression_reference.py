"""Write ppl_genmodels/models/references/logistic_regression_breast_cancer.json.

    python scripts/make_logistic_regression_reference.py

A long NUTS run on ``ppl_genmodels.models.logistic_regression`` (no closed form exists):
``pyro.infer.NUTS`` with a dense mass matrix (``full_mass=True``: the features are
correlated), target acceptance 0.9, NUM_CHAINS chains run one after another (seeds
SEED + chain), each NUM_WARMUP warm-up and NUM_SAMPLES kept draws, one torch thread.
Per parameter: ArviZ mean, sd, their MCSEs, bulk/tail ESS and R-hat; every THIN-th draw of
each chain is kept for 1-Wasserstein distances. Same layout as the posteriordb references
(``scripts/make_posteriordb_references.py``). The script fails if R-hat > 1.01, bulk ESS <
1000 or any transition diverged.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ppl_genmodels.models import logistic_regression  # noqa: E402

NUM_CHAINS, NUM_WARMUP, NUM_SAMPLES, THIN, SEED = 4, 1000, 1000, 4, 20240
COMMAND = "python scripts/make_logistic_regression_reference.py"
CITATION = (
    "Data: Wolberg, Street & Mangasarian (1995), Breast Cancer Wisconsin (Diagnostic), UCI "
    "Machine Learning Repository, doi:10.24432/C5DW2B, via sklearn.datasets.load_breast_cancer. "
    "Sampler: Hoffman & Gelman (2014), The No-U-Turn Sampler, JMLR 15; Pyro's NUTS."
)


def main() -> None:
    torch.set_num_threads(1)
    data = logistic_regression.load_data()
    chains, diverging = [], 0
    start = time.perf_counter()
    for chain in range(NUM_CHAINS):
        pyro.set_rng_seed(SEED + chain)
        kernel = NUTS(logistic_regression.model, full_mass=True, target_accept_prob=0.9)
        mcmc = MCMC(kernel, num_samples=NUM_SAMPLES, warmup_steps=NUM_WARMUP, num_chains=1,
                    disable_progbar=True)
        mcmc.run(**data)
        diverging += len(mcmc.diagnostics()["divergences"]["chain 0"])
        chains.append({k: v.detach().numpy() for k, v in mcmc.get_samples().items()})
        print(f"chain {chain} done after {time.perf_counter() - start:.0f} s", flush=True)
    draws = {"b": np.stack([c["b"] for c in chains])}
    w = np.stack([c["w"] for c in chains])
    draws.update({f"w[{i}]": w[..., i] for i in range(w.shape[-1])})
    summ = az.summary(az.from_dict(posterior=draws), kind="all", round_to="none")
    params = {k: {c: float(summ.loc[k, c]) for c in
                  ("mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")}
              for k in draws}
    bad = [k for k, v in params.items() if v["r_hat"] > 1.01 or v["ess_bulk"] < 1000]
    if bad or diverging:
        raise SystemExit(f"reference run not converged: {bad}, {diverging} divergences")
    record = {
        "posterior": "logistic_regression-breast_cancer",
        "source": f"Pyro NUTS (full_mass=True, target_accept_prob=0.9), {NUM_CHAINS} chains x "
                  f"{NUM_SAMPLES} draws after {NUM_WARMUP} warm-up, run sequentially with "
                  f"seeds {SEED}..{SEED + NUM_CHAINS - 1} (pyro.set_rng_seed), 1 torch thread, "
                  f"pyro {pyro.__version__}, torch {torch.__version__}; {diverging} divergences; "
                  f"draws thinned by {THIN}; command: {COMMAND}",
        "citation": CITATION,
        "generated_by": COMMAND,
        "parameters": params,
        "draws": {k: [round(float(x), 6) for x in v[:, ::THIN].ravel()] for k, v in draws.items()},
    }
    target = logistic_regression.REFERENCE_FILE
    target.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target}: {len(params)} parameters, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
