"""Reference posteriors: moments (and optionally draws) that engines are scored against."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["Reference"]


@dataclass
class Reference:
    """Reference posterior moments per scalar parameter, named as ``az.summary`` names them
    (``"mu"``, ``"theta[0]"``, ``"z[1, 0]"``; 0-based).

    :param mean: parameter -> posterior mean.
    :param sd: parameter -> posterior standard deviation.
    :param mcse_mean: parameter -> Monte Carlo standard error of ``mean`` (0 for closed forms).
    :param draws: parameter -> 1-D array of (near-)independent reference draws, used for the
        1-Wasserstein distance; ``None`` if unavailable.
    :param source: where the numbers come from (provenance), shown in reports.
    :param citation: reference for the source.
    """

    mean: Mapping[str, float]
    sd: Mapping[str, float]
    mcse_mean: Mapping[str, float] = field(default_factory=dict)
    draws: Mapping[str, np.ndarray] | None = None
    source: str = ""
    citation: str = ""

    @property
    def parameters(self) -> list[str]:
        return list(self.mean)

    def relabel(self, labels: Mapping[str, str]) -> "Reference":
        """This reference with its parameters renamed by ``labels`` (old -> new; names not
        in ``labels`` are kept), e.g. ``{"theta[0]": "theta[Choate]"}`` from
        :func:`ppl_genmodels._arviz.coordinate_labels` when the posterior declares coords.

        :raises ValueError: two parameters would get the same name."""
        rename = {k: labels.get(k, k) for k in self.mean}
        if len(set(rename.values())) != len(rename):
            raise ValueError("relabel: two reference parameters would get the same name")

        def move(mapping):
            return {rename.get(k, labels.get(k, k)): v for k, v in mapping.items()}

        return Reference(mean=move(self.mean), sd=move(self.sd), mcse_mean=move(self.mcse_mean),
                         draws=move(self.draws) if self.draws is not None else None,
                         source=self.source, citation=self.citation)

    @classmethod
    def from_json(cls, path: str | Path) -> "Reference":
        """Load a reference written by ``scripts/make_posteriordb_references.py``.

        :raises ValueError: the file lacks ``mean`` or ``sd`` for some parameter.
        """
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        params = raw["parameters"]
        missing = [k for k, v in params.items() if "mean" not in v or "sd" not in v]
        if missing:
            raise ValueError(f"{path}: parameters {missing} lack a mean or sd")
        draws = raw.get("draws")
        return cls(
            mean={k: float(v["mean"]) for k, v in params.items()},
            sd={k: float(v["sd"]) for k, v in params.items()},
            mcse_mean={k: float(v.get("mcse_mean", 0.0)) for k, v in params.items()},
            draws={k: np.asarray(v, dtype=np.float64) for k, v in draws.items()} if draws else None,
            source=raw.get("source", ""),
            citation=raw.get("citation", ""),
        )

    @classmethod
    def from_normal(cls, mean: Mapping[str, float], sd: Mapping[str, float], source: str,
                    num_draws: int = 4000, seed: int = 0) -> "Reference":
        """A closed-form Gaussian posterior; ``draws`` are exact iid samples (seeded)."""
        rng = np.random.default_rng(seed)
        draws = {k: rng.normal(mean[k], sd[k], size=num_draws) for k in mean}
        return cls(mean=dict(mean), sd=dict(sd), mcse_mean={k: 0.0 for k in mean},
                   draws=draws, source=source, citation="closed form")
