"""The result of simulation-based calibration: ranks, uniformity tests, persistence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..io import atomic_path
from . import stats as sbc_stats

__all__ = ["SBCResult", "vsbc", "SIM_STATS"]

# Per-simulation statistics, in the order the driver records them.
SIM_STATS = ("seed", "ess_min", "thin", "under_thinned", "wall_s")


@dataclass
class SBCResult:
    """Ranks of simulated parameters among posterior draws, with uniformity tests.

    :ivar ranks: ``(N, P)`` int ranks in ``{0..L}``; N simulations, P scalar parameters.
    :ivar true_values: ``(N, P)`` simulated latent values z_i ~ p(z) the ranks are of.
    :ivar param_names: P names as ``az.summary`` writes them (``"theta[3]"``).
    :ivar num_draws: L, posterior draws each rank is taken among.
    :ivar sim_stats: per-simulation columns ``seed``, ``ess_min`` (smallest bulk ESS over
        parameters, NaN for VI), ``thin`` (thinning step used), ``under_thinned`` (fewer
        than L draws survived thinning, so the L draws are autocorrelated), ``wall_s``.
    :ivar engine: engine name; ``variational``: VI engine (VSBC applies).
    :ivar alpha: family-wise error rate of the verdict.
    :ivar attrs: settings of the run (model, seed, engine config, ...).
    """

    ranks: np.ndarray
    true_values: np.ndarray
    param_names: list[str]
    num_draws: int
    sim_stats: pd.DataFrame
    engine: str
    variational: bool
    model: str
    alpha: float = 0.05
    bins: int = 20
    attrs: dict = field(default_factory=dict)

    @property
    def num_simulations(self) -> int:
        return int(self.ranks.shape[0])

    def to_dataframe(self) -> pd.DataFrame:
        """Ranks as a table: one row per simulation, one column per parameter, plus the
        ``sim_stats`` columns. Index ``simulation``."""
        table = pd.DataFrame(self.ranks, columns=self.param_names)
        table.index.name = "simulation"
        return pd.concat([table, self.sim_stats.set_index(table.index)], axis=1)

    def tests(self, alpha: float | None = None) -> pd.DataFrame:
        """Uniformity tests per parameter and the verdict.

        Columns: ``ecdf_p`` (simultaneous ECDF test, Säilynoja et al. 2022: the decision
        test), ``chi2``/``chi2_p`` (binned ranks, Talts et al. 2018, reported only),
        ``mean_rank_frac`` (mean rank / L; 0.5 when unbiased), ``extreme_frac`` (share of
        ranks among the e lowest or e highest rank values, e = max(1, round(0.025 (L + 1)));
        2 e / (L + 1) when calibrated, i.e. 0.05 for L = 99; larger when over-confident), for VI engines ``vsbc_ks``/``vsbc_p`` (Yao et al. 2018) and
        ``vsbc_flag``, and ``verdict`` ("pass"/"fail").

        Rule (stated in the report): Bonferroni over the P parameters. A parameter fails
        when ``ecdf_p < alpha / P``; the run passes when none fails, so a calibrated engine
        fails with probability at most ``alpha``. VSBC flags use the same rule on
        ``vsbc_p``.
        """
        alpha = self.alpha if alpha is None else alpha
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        level = alpha / len(self.param_names)
        bins = sbc_stats.rank_bins(self.num_draws, self.num_simulations, self.bins)
        edge = max(1, int(round(0.025 * (self.num_draws + 1))))
        rows = []
        for j, name in enumerate(self.param_names):
            r = self.ranks[:, j]
            _, ecdf_p = sbc_stats.ecdf_test(r, self.num_draws)
            chi2, chi2_p = sbc_stats.chi_square_test(r, self.num_draws, bins)
            row = {
                "parameter": name,
                "ecdf_p": ecdf_p,
                "chi2": chi2,
                "chi2_p": chi2_p,
                "mean_rank_frac": float(r.mean() / self.num_draws),
                "extreme_frac": float(((r < edge) | (r > self.num_draws - edge)).mean()),
            }
            if self.variational:
                ks, vsbc_p, _ = sbc_stats.vsbc_test(r, self.num_draws)
                row.update(vsbc_ks=ks, vsbc_p=vsbc_p, vsbc_flag=bool(vsbc_p < level))
            row["verdict"] = "fail" if ecdf_p < level else "pass"
            rows.append(row)
        return pd.DataFrame(rows).set_index("parameter")

    @property
    def passed(self) -> bool:
        """True when no parameter fails the Bonferroni-corrected ECDF test."""
        return bool((self.tests()["verdict"] == "pass").all())

    def vsbc(self, alpha: float | None = None) -> pd.DataFrame:
        """VSBC table (Yao et al. 2018, sec. 3): ``ks``, ``p_value``, ``mean_p`` (mean of
        P_q(z < z_true), 0.5 when symmetric) and ``flag`` (Bonferroni,
        ``p_value < alpha / P``) per parameter. Meaningful for any engine whose draws are
        iid from its approximation; computed for all."""
        alpha = self.alpha if alpha is None else alpha
        level = alpha / len(self.param_names)
        rows = []
        for j, name in enumerate(self.param_names):
            ks, p_value, mean_p = sbc_stats.vsbc_test(self.ranks[:, j], self.num_draws)
            rows.append({"parameter": name, "ks": ks, "p_value": p_value, "mean_p": mean_p,
                         "flag": bool(p_value < level)})
        return pd.DataFrame(rows).set_index("parameter")

    # --- persistence ------------------------------------------------------------------
    def to_xarray(self):
        """An ``xarray.Dataset`` with ``ranks``/``true_values`` (simulation, parameter),
        the per-simulation statistics (simulation) and the settings as attrs."""
        coords = {"simulation": np.arange(self.num_simulations),
                  "parameter": np.asarray(self.param_names, dtype=str)}
        data = {
            "ranks": (("simulation", "parameter"), self.ranks),
            "true_values": (("simulation", "parameter"), self.true_values),
        }
        for col in self.sim_stats.columns:
            values = self.sim_stats[col].to_numpy()
            data[col] = ("simulation", values.astype(np.int8) if values.dtype == bool else values)
        attrs = {"num_draws": int(self.num_draws), "engine": self.engine,
                 "variational": int(self.variational), "model": self.model,
                 "alpha": float(self.alpha), "bins": int(self.bins),
                 "settings": json.dumps(self.attrs, sort_keys=True, default=str)}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def save(self, path: str | Path) -> Path:
        """Write the result to netCDF (atomically). :returns: the path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            self.to_xarray().to_netcdf(tmp, engine="h5netcdf")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SBCResult":
        """Read a result written by :meth:`save` (files from before the rename store
        ``true_values`` as ``theta_true``)."""
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
        sim = pd.DataFrame({c: ds[c].values for c in SIM_STATS if c in ds})
        if "under_thinned" in sim:
            sim["under_thinned"] = sim["under_thinned"].astype(bool)
        return cls(
            ranks=ds["ranks"].values.astype(np.int64),
            true_values=ds["true_values" if "true_values" in ds else "theta_true"].values,
            param_names=[str(p) for p in ds["parameter"].values],
            num_draws=int(ds.attrs["num_draws"]),
            sim_stats=sim,
            engine=str(ds.attrs["engine"]),
            variational=bool(ds.attrs["variational"]),
            model=str(ds.attrs["model"]),
            alpha=float(ds.attrs["alpha"]),
            bins=int(ds.attrs["bins"]),
            attrs=json.loads(ds.attrs["settings"]),
        )


def vsbc(result: SBCResult, alpha: float | None = None) -> pd.DataFrame:
    """VSBC symmetry test of Yao et al. (2018, sec. 3) on an :class:`SBCResult`; see
    :meth:`SBCResult.vsbc`. Run ``sbc(..., engine="svi"/"rws"/"amortized")`` first."""
    if not isinstance(result, SBCResult):
        raise ValueError(f"vsbc needs an SBCResult from sbc(...), not {type(result).__name__}")
    return result.vsbc(alpha)
