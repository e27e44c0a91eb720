"""Regenerate ppl_genmodels/models/references/*.json (and data/*.json) from posteriordb.

    python scripts/make_posteriordb_references.py ../shared/references

Reads ``<posterior>.draws.json.zip`` (10 chains x 1000 draws, Stan NUTS; see that folder's
README), computes per parameter the mean, sd, their MCSEs, bulk/tail ESS and R-hat with
ArviZ, and keeps every 10th draw of each chain (1000 near-independent draws) for
1-Wasserstein distances. Parameter names become 0-based (``theta[1]`` -> ``theta[0]``).
It also copies the data sets in ``DATA`` (``<data>.data.json.zip``) to
``ppl_genmodels/models/data/<data>.json`` with a ``provenance`` entry, so the package
needs nothing outside itself at run time.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

import arviz as az
import numpy as np

POSTERIORS = {
    "eight_schools-eight_schools_noncentered": "eight_schools_noncentered",
    "kidiq-kidscore_momiq": "kidiq_kidscore_momiq",
    "low_dim_gauss_mix-low_dim_gauss_mix": "low_dim_gauss_mix",
}
DATA = {
    "kidiq": "Gelman & Hill (2007), Data Analysis Using Regression and Multilevel/Hierarchical "
             "Models, ch. 3 (child IQ data; subsample of the NLSY)",
    "low_dim_gauss_mix": "simulated by the posteriordb authors (two-component 1-D Gaussian "
                         "mixture, N = 1000)",
}
CITATION = (
    "Magnusson, Bürkner & Vehtari (2024), posteriordb: testing, benchmarking and developing "
    "Bayesian inference algorithms, arXiv:2407.04967; https://github.com/stan-dev/posteriordb"
)


def zero_based(name: str) -> str:
    return re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)) - 1}]", name)


def main(folder: str) -> None:
    out_dir = Path(__file__).resolve().parents[1] / "ppl_genmodels" / "models" / "references"
    for posterior, stem in POSTERIORS.items():
        path = Path(folder) / f"{posterior}.draws.json.zip"
        with zipfile.ZipFile(path) as zf:
            chains = json.loads(zf.read(zf.namelist()[0]))
        names = list(chains[0])
        draws = {zero_based(k): np.array([c[k] for c in chains]) for k in names}
        idata = az.from_dict(posterior=draws)
        summ = az.summary(idata, kind="all", round_to="none")
        params = {}
        for k in draws:
            row = summ.loc[k]
            params[k] = {c: float(row[c]) for c in
                         ("mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")}
        record = {
            "posterior": posterior,
            "source": f"posteriordb reference posterior {posterior}: 10 chains x 1000 draws, "
                      "Stan NUTS (10,000 warm-up, 20,000 iterations thinned by 10, "
                      "adapt_delta 0.95, seed 4711)",
            "citation": CITATION,
            "generated_by": "python scripts/make_posteriordb_references.py ../shared/references",
            "parameters": params,
            "draws": {k: [round(float(x), 6) for x in v[:, ::10].ravel()] for k, v in draws.items()},
        }
        target = out_dir / f"{stem}.json"
        target.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {target}: {len(params)} parameters")
    data_dir = out_dir.parent / "data"
    data_dir.mkdir(exist_ok=True)
    for stem, origin in DATA.items():
        with zipfile.ZipFile(Path(folder) / f"{stem}.data.json.zip") as zf:
            data = json.loads(zf.read(zf.namelist()[0]))
        record = {
            "provenance": f"posteriordb data set {stem!r} (posterior_database/data/data/"
                          f"{stem}.json.zip), copied verbatim; origin: {origin}. {CITATION}",
            "generated_by": "python scripts/make_posteriordb_references.py ../shared/references",
            **data,
        }
        target = data_dir / f"{stem}.json"
        target.write_text(json.dumps(record) + "\n", encoding="utf-8")
        print(f"wrote {target}: {sorted(data)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/references")
