"""Simulation-based calibration of an inference engine on a Pyro posterior.

SBC (Talts et al. 2018): draw theta_i ~ p(theta), x_i ~ p(x | theta_i) from the model itself,
run inference on x_i, and rank theta_i among L (near-)independent posterior draws. If the
inference is exact, each rank is uniform on {0..L}, because the data-averaged posterior is
the prior. Non-uniform ranks show the direction of the error: a U shape is an
over-confident (under-dispersed) posterior, a hump an over-dispersed one, a slope a bias.
VSBC (Yao et al. 2018, sec. 3) reads the same simulations for variational engines.

Two paths:

- refit (``engine="nuts"``, ``"svi"``, ``"rws"`` or an engine object): the engine is run
  afresh on every simulated data set (NUTS draws are thinned by ESS).
- amortized (``engine="amortized"``): an amortized guide q(z | x) (an encoder) is trained
  ONCE, by default with reweighted wake-sleep in its sleep phase (``insomnia=0``), which
  fits q to the model's own simulations (z, x) ~ p(z) p(x | z), or it is passed ready
  trained as ``guide=``. Each simulated data set then costs one forward pass plus L draws.
  This measures the calibration of q averaged over the prior predictive p(x): it passes
  when E_{x ~ p(x)} q(z | x) reproduces the prior in every rank statistic, not that
  q(z | x_obs) is good at the observed data set.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyro
import pyro.poutine as poutine
from pyro.poutine.uncondition_messenger import UnconditionMessenger
import torch
from tqdm.auto import tqdm

from ..io import atomic_path, write_text
from ..posterior import Posterior
from . import stats as sbc_stats

log = logging.getLogger(__name__)

__all__ = ["sbc", "vsbc", "SBCResult", "AMORTIZED"]

AMORTIZED = "amortized"
CONFIG_FILE = "sbc_config.json"
GUIDE_FILE = "amortized_guide.pt"
_BATCH_GLOB = "batch_*.npz"
_SIM_STATS = ("seed", "ess_min", "thin", "under_thinned", "wall_s")


# --------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------
@dataclass
class SBCResult:
    """Ranks of simulated parameters among posterior draws, with uniformity tests.

    :ivar ranks: ``(N, P)`` int ranks in ``{0..L}``; N simulations, P scalar parameters.
    :ivar theta_true: ``(N, P)`` simulated parameter values theta_i ~ p(theta).
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
    theta_true: np.ndarray
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
        P_q(theta < theta_true), 0.5 when symmetric) and ``flag`` (Bonferroni,
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
        """An ``xarray.Dataset`` with ``ranks``/``theta_true`` (simulation, parameter),
        the per-simulation statistics (simulation) and the settings as attrs."""
        import xarray as xr

        coords = {"simulation": np.arange(self.num_simulations),
                  "parameter": np.asarray(self.param_names, dtype=str)}
        data = {
            "ranks": (("simulation", "parameter"), self.ranks),
            "theta_true": (("simulation", "parameter"), self.theta_true),
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
        """Read a result written by :meth:`save`."""
        import xarray as xr

        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
        sim = pd.DataFrame({c: ds[c].values for c in _SIM_STATS if c in ds})
        if "under_thinned" in sim:
            sim["under_thinned"] = sim["under_thinned"].astype(bool)
        return cls(
            ranks=ds["ranks"].values.astype(np.int64),
            theta_true=ds["theta_true"].values,
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


# --------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------
def _observed_keys(posterior: Posterior, overrides: Mapping[str, str] | None) -> dict[str, str]:
    """Observed site -> keyword of ``posterior.data`` holding its value."""
    sites = posterior.validate()
    overrides = dict(overrides or {})
    out = {}
    for site, value in sites.observed.items():
        if site in overrides:
            key = overrides[site]
            if key not in posterior.data:
                raise ValueError(f"observed_keys[{site!r}] = {key!r} is not a data keyword; "
                                 f"keywords are {sorted(posterior.data)}")
            out[site] = key
            continue
        matches = [k for k, v in posterior.data.items()
                   if v.shape == value.shape and torch.equal(v.to(value.dtype), value)]
        if len(matches) != 1:
            raise ValueError(
                f"cannot tell which data keyword holds observed site {site!r} (candidates "
                f"{matches or 'none'}); pass observed_keys={{{site!r}: 'keyword'}}"
            )
        out[site] = matches[0]
    for site in overrides:
        if site not in sites.observed:
            raise ValueError(f"observed_keys names {site!r}, which is not an observed site; "
                             f"observed sites are {sorted(sites.observed)}")
    return out


def _flat(values: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """site -> (n, *shape) arrays to scalar name -> (n,), named like ``flat_draws``."""
    out = {}
    for site in names:
        v = np.asarray(values[site], dtype=np.float64)
        if v.ndim == 1:
            out[site] = v
            continue
        for idx in np.ndindex(*v.shape[1:]):
            out[f"{site}[{', '.join(map(str, idx))}]"] = v[(slice(None), *idx)]
    return out


class _UnconditionData(UnconditionMessenger):
    """``poutine.uncondition`` for data sites only: a ``pyro.deterministic`` site keeps
    its computed value (unconditioned, Pyro re-samples its Delta and, inside a plate,
    broadcasts it to the wrong shape)."""

    def _pyro_sample(self, msg):
        if msg["infer"].get("_deterministic"):
            return
        super()._pyro_sample(msg)


def _simulate(posterior: Posterior, keys: Mapping[str, str], sites_to_rank: Sequence[str],
              seed: int) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """theta ~ p(theta), x ~ p(x | theta) from the posterior's own model.

    Observed sites are unconditioned (``pyro.poutine.uncondition``); every other data
    entry (covariates such as eight schools' sigma) stays as given.

    :returns: ``(theta, data)``: site -> value array (shape of one draw) and the data dict
        with simulated observations.
    """
    pyro.set_rng_seed(seed)
    with posterior.session() as (model, _), torch.no_grad():
        trace = poutine.trace(_UnconditionData()(model)).get_trace(**posterior.data)
    data = dict(posterior.data)
    for site, key in keys.items():
        value = trace.nodes[site]["value"].detach()
        data[key] = value.reshape(posterior.data[key].shape).to(posterior.data[key].dtype)
    theta = {s: trace.nodes[s]["value"].detach().cpu().numpy() for s in sites_to_rank}
    return theta, data


def _select_draws(draws: np.ndarray, num_draws: int, thin: int | str,
                  ess_min: float) -> tuple[np.ndarray, int, bool]:
    """L near-independent draws from ``(chains, M, P)`` MCMC draws.

    Thinning step t = ceil(chains * M / min ESS) (Talts et al. 2018, sec. 5.1: thin so the
    kept draws are roughly independent) or the given int. From each chain every t-th draw
    is kept; L of those are taken evenly spaced. If fewer than L survive, L draws evenly
    spaced over all draws are used and ``under_thinned`` is True.

    :returns: ``(selected (L, P), t, under_thinned)``.
    """
    chains, m, p = draws.shape
    if thin == "ess":
        t = max(1, math.ceil(chains * m / ess_min)) if np.isfinite(ess_min) and ess_min > 0 else m
    else:
        t = int(thin)
    kept = draws[:, ::t].reshape(-1, p)
    under = kept.shape[0] < num_draws
    pool = draws.reshape(-1, p) if under else kept
    idx = np.round(np.linspace(0, pool.shape[0] - 1, num_draws)).astype(int)
    return pool[idx], t, bool(under)


def _engine_draws(idata, names: Sequence[str], num_draws: int, thin, variational: bool):
    """The L draws of one engine result, and (ess_min, thin, under_thinned)."""
    from .. import _arviz
    from ..diagnostics import flat_draws

    flat = flat_draws(idata)
    missing = [n for n in names if n not in flat]
    if missing:
        raise RuntimeError(f"the engine's result lacks parameters {missing[:5]}")
    draws = np.stack([flat[n] for n in names], axis=-1)  # (chains, M, P)
    if variational:  # iid draws from q: no thinning needed
        pool = draws.reshape(-1, draws.shape[-1])
        if pool.shape[0] < num_draws:
            raise RuntimeError(f"engine returned {pool.shape[0]} draws, fewer than L={num_draws}")
        return pool[:num_draws], (math.nan, 1, False)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        ess = _arviz.ess(idata, method="bulk")
    ess_min = min(float(np.nanmin(np.asarray(ess[v].values))) for v in ess.data_vars)
    selected, t, under = _select_draws(draws, num_draws, thin, ess_min)
    return selected, (ess_min, t, under)


# --------------------------------------------------------------------------------------
# settings and checkpoints
# --------------------------------------------------------------------------------------
def _data_hash(posterior: Posterior) -> str:
    h = hashlib.sha1()
    for key in sorted(posterior.data):
        h.update(key.encode())
        h.update(posterior.data[key].detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _guide_hash(guide: Any) -> str:
    owner = guide if isinstance(guide, torch.nn.Module) else getattr(guide, "__self__", None)
    h = hashlib.sha1(getattr(guide, "__qualname__", type(guide).__qualname__).encode())
    if isinstance(owner, torch.nn.Module):
        for name, tensor in owner.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _seeds_for(seed: int, index: int) -> tuple[int, int]:
    """(simulation seed, inference seed) of simulation ``index``, each < 2**32."""
    # They depend only on (seed, index): batches can run in any order and a resumed run
    # redoes exactly the same simulations.
    a, b = np.random.SeedSequence([seed, index]).generate_state(2)
    return int(a), int(b)


def _write_batch(directory: Path, batch: int, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(directory / f"batch_{batch:05d}.npz") as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)


def _read_batches(directory: Path, num_batches: int) -> dict[int, dict[str, np.ndarray]]:
    out = {}
    for path in sorted(directory.glob(_BATCH_GLOB)):
        batch = int(path.stem.split("_")[1])
        if batch < num_batches:
            with np.load(path) as f:
                out[batch] = {k: f[k] for k in f.files}
    return out


def _prepare_checkpoint(directory: Path | None, settings: dict, resume: bool) -> None:
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILE
    if config.exists() and resume:
        old = json.loads(config.read_text())
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in diff[:4])
            raise ValueError(
                f"checkpoint folder {directory} holds an SBC run with other settings ({shown}); "
                "use another folder or resume=False (CLI: --force) to start over"
            )
    elif not resume:
        for path in list(directory.glob(_BATCH_GLOB)) + [directory / GUIDE_FILE]:
            if path.exists():
                path.unlink()
    write_text(config, json.dumps(settings, sort_keys=True, indent=1))


# --------------------------------------------------------------------------------------
# the amortized guide
# --------------------------------------------------------------------------------------
def _train_guide(posterior: Posterior, train_engine: str, config: dict, seed: int,
                 progress: bool, directory: Path | None):
    """Train the posterior's guide once (or load it from ``directory``).

    :returns: ``(guide, param_state)``: the trained guide (a private copy for Module
        guides) and Pyro param-store values for function guides.
    """
    from ..infer import get_engine

    path = directory / GUIDE_FILE if directory is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=False)
        guide = posterior.guide
        owner = guide if isinstance(guide, torch.nn.Module) else getattr(guide, "__self__", None)
        if isinstance(owner, torch.nn.Module):
            owner = copy.deepcopy(owner)
            owner.load_state_dict(saved["state_dict"])
            guide = owner if isinstance(guide, torch.nn.Module) else getattr(owner, guide.__name__)
        return guide, saved["param_state"]
    trained = get_engine(train_engine, **config).run(posterior, seed=seed, progress=progress)
    guide, param_state = trained.guide, trained.param_state
    if path is not None:
        owner = guide if isinstance(guide, torch.nn.Module) else getattr(guide, "__self__", None)
        state = owner.state_dict() if isinstance(owner, torch.nn.Module) else {}
        with atomic_path(path) as tmp:
            torch.save({"state_dict": state, "param_state": param_state}, tmp)
    return guide, param_state


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
def _resolve_posterior(model_name_or_factory, quick: bool, seed: int):
    if isinstance(model_name_or_factory, str):
        from ..models import get_model

        spec = get_model(model_name_or_factory)  # ValueError lists the known models
        return spec.posterior(quick=quick, seed=seed), spec.engine_config(quick), spec.name
    if callable(model_name_or_factory):
        posterior = model_name_or_factory()
        if not isinstance(posterior, Posterior):
            raise ValueError(
                f"the model factory must return a Posterior, not {type(posterior).__name__}"
            )
        return posterior, {}, posterior.name
    raise ValueError(
        "model_name_or_factory must be a built-in model name or a callable returning a "
        f"Posterior, not {type(model_name_or_factory).__name__}"
    )


def sbc(
    model_name_or_factory: str | Callable[[], Posterior],
    engine: Any = "nuts",
    num_simulations: int = 200,
    num_draws: int = 99,
    thin: int | str = "ess",
    seed: int = 0,
    progress: bool = True,
    engine_config: Mapping[str, Any] | None = None,
    *,
    guide: Callable | None = None,
    train_engine: str = "rws",
    quick: bool = False,
    var_names: Sequence[str] | None = None,
    observed_keys: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    bins: int = 20,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    batch_size: int = 10,
) -> SBCResult:
    """Simulation-based calibration (Talts et al. 2018) of an engine on a model.

    For i = 1..N: theta_i ~ p(theta) and x_i ~ p(x | theta_i) from the posterior's model
    with its observed sites unconditioned (covariates kept), inference on x_i, and the rank
    of each scalar of theta_i among L posterior draws. Deterministic sites (e.g. eight
    schools' theta) are ranked too. VI draws are iid and used as they are; MCMC draws are
    thinned by ESS (see ``thin``).

    :param model_name_or_factory: a built-in model name (its ``posterior(quick, seed)`` and
        engine budgets are used) or a zero-argument callable returning a
        :class:`~ppl_genmodels.Posterior`.
    :param engine: ``"nuts"``, ``"svi"``, ``"rws"`` or an engine object (refit on every
        simulated data set), or ``"amortized"``: no refit, the guide is trained once (or
        given as ``guide=``) and only evaluated per data set (see the module docstring for
        what this measures).
    :param num_simulations: N (>= 10). Power: N = 100 detects a posterior with half the
        true sd (ranks piled at the ends) with near certainty; small biases need more.
    :param num_draws: L (>= 1), draws each rank is taken among; ranks lie in {0..L}.
    :param thin: ``"ess"`` (step ceil(total draws / min bulk ESS)) or an int step; MCMC only.
    :param seed: seed of simulation i is derived from ``(seed, i)``; training uses ``seed``.
    :param progress: tqdm bar over simulations.
    :param engine_config: keyword arguments of the engine (``"amortized"``: of
        ``train_engine``); they update the built-in model's budgets. VI ``num_draws`` is
        set to L.
    :param guide: ``"amortized"`` only: an already-trained guide ``guide(**data)`` to use
        instead of training one. It must hold its own parameters (a Module, or a function
        without ``pyro.param``), as each run uses a fresh param store.
    :param train_engine: ``"rws"`` (default; with ``insomnia=0`` unless configured: the
        sleep phase trains q on prior simulations, i.e. amortizes over p(x)) or ``"svi"``
        (fits q at the observed data only).
    :param quick: small budgets of a built-in model.
    :param var_names: sites to rank (default: every latent and deterministic site).
    :param observed_keys: observed site -> data keyword, when they cannot be matched by value.
    :param alpha: family-wise error rate of the verdict (Bonferroni over parameters).
    :param bins: maximum rank-histogram bins for the chi-square test.
    :param checkpoint_dir: folder for ``batch_*.npz`` checkpoints (one per ``batch_size``
        simulations) and the trained amortized guide; a rerun with the same settings keeps
        finished batches and runs only the missing ones (also after raising N).
    :param resume: ``False`` deletes existing checkpoints first.
    :returns: :class:`SBCResult`.
    :raises ValueError: before any simulation, on unknown model/engine, bad counts, an
        engine/guide mismatch, NUTS budgets too small for L, unknown ``var_names``, or a
        checkpoint folder holding a run with other settings.
    :raises RuntimeError: an engine run failed (message names the simulation and seed).
    """
    from ..infer import GuideEngine, get_engine

    if not isinstance(num_simulations, (int, np.integer)) or num_simulations < 10:
        raise ValueError(f"num_simulations must be an int >= 10, got {num_simulations!r}")
    if not isinstance(num_draws, (int, np.integer)) or num_draws < 1:
        raise ValueError(f"num_draws must be an int >= 1, got {num_draws!r}")
    if not (thin == "ess" or (isinstance(thin, (int, np.integer)) and thin >= 1)):
        raise ValueError(f"thin must be 'ess' or an int >= 1, got {thin!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if bins < 2 or batch_size < 1:
        raise ValueError(f"bins must be >= 2 and batch_size >= 1, got {bins}, {batch_size}")
    amortized = isinstance(engine, str) and engine == AMORTIZED
    if guide is not None and not amortized:
        raise ValueError(f"guide= is only used with engine='{AMORTIZED}', not {engine!r}")
    if guide is not None and engine_config:
        raise ValueError("guide= is already trained: engine_config (training settings) would be unused")
    if amortized and train_engine not in ("rws", "svi"):
        raise ValueError(f"train_engine must be 'rws' or 'svi', got {train_engine!r}")

    posterior, model_config, model_label = _resolve_posterior(model_name_or_factory, quick, seed)
    sites = posterior.validate()
    keys = _observed_keys(posterior, observed_keys)
    if not keys:
        raise ValueError("the model has no observed site: there is no data to simulate")
    rankable = {**sites.latent, **sites.deterministic}
    if var_names is not None:
        unknown = [v for v in var_names if v not in rankable]
        if unknown or not var_names:
            raise ValueError(f"var_names {unknown or var_names} are not latent/deterministic "
                             f"sites; sites are {sorted(rankable)}")
        rankable = {v: rankable[v] for v in var_names}
    if not rankable:
        raise ValueError("no continuous latent or deterministic site to rank")

    # Engine and its settings, all checked before any simulation.
    if amortized:
        if guide is not None:
            posterior = Posterior(posterior.model, guide, posterior.data, posterior.params,
                                  name=posterior.name)
            posterior.validate()
            engine_label, engine_settings = "amortized(user guide)", {"guide": _guide_hash(guide)}
            runner = None
        else:
            if posterior.guide is None:
                raise ValueError("engine='amortized' needs a guide: the posterior has none")
            cfg = dict(model_config.get(train_engine, {}))
            if train_engine == "rws":
                cfg.setdefault("insomnia", 0.0)
            cfg.update(engine_config or {})
            cfg["num_draws"] = 1  # the training run's own draws are not used
            runner = get_engine(train_engine, **cfg)
            runner.validate(posterior)
            engine_label = f"amortized({train_engine})"
            engine_settings = {"train_engine": train_engine, "train_config": cfg,
                               "guide": _guide_hash(posterior.guide)}
        variational = True
    else:
        if engine_config and not isinstance(engine, str):
            raise ValueError("engine_config applies to built-in engines named by a string")
        cfg = dict(model_config.get(engine, {})) if isinstance(engine, str) else {}
        cfg.update(engine_config or {})
        runner = get_engine(engine, **cfg) if isinstance(engine, str) else get_engine(engine)
        # Engines whose draws are iid from an approximation q: no thinning, VSBC applies.
        variational = isinstance(runner, GuideEngine)
        if variational:
            runner = dataclasses.replace(runner, num_draws=num_draws)
            cfg["num_draws"] = num_draws
        runner.validate(posterior)
        total = getattr(runner, "num_samples", None)
        if total is not None and not variational:
            total *= getattr(runner, "num_chains", 1)
            need = num_draws * (thin if isinstance(thin, (int, np.integer)) else 1)
            if total < need:
                raise ValueError(
                    f"{runner.name}: num_samples * num_chains = {total} draws cannot give "
                    f"L={num_draws} draws thinned by {thin}; raise num_samples or lower num_draws"
                )
        engine_label = runner.name
        engine_settings = {"engine_config": cfg}

    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    settings = {
        "model": model_label,
        "data_sha1": _data_hash(posterior),
        "engine": engine_label,
        **engine_settings,
        "num_draws": int(num_draws),
        "thin": thin if thin == "ess" else int(thin),
        "seed": int(seed),
        "quick": bool(quick),
        "sites": sorted(rankable),
        "batch_size": int(batch_size),
    }
    settings = json.loads(json.dumps(settings, default=str))
    _prepare_checkpoint(directory, settings, resume)

    names = list(_flat({k: np.zeros((1, *s)) for k, s in rankable.items()}, list(rankable)))
    num_batches = math.ceil(num_simulations / batch_size)
    batches = _read_batches(directory, num_batches) if directory is not None else {}
    before = posterior.theta()

    trained = None
    if amortized:
        if runner is None:
            trained = (guide, {})
        else:
            trained = _train_guide(posterior, train_engine, cfg, seed, progress, directory)
            posterior.check_theta_unchanged(before, f"training engine {train_engine!r}")

    for batch in list(batches):  # keep finished batches, cut to the current N
        size = min((batch + 1) * batch_size, num_simulations) - batch * batch_size
        if len(batches[batch]["seed"]) >= size:
            batches[batch] = {k: v[:size] for k, v in batches[batch].items()}
        else:
            del batches[batch]
    done = sum(len(b["seed"]) for b in batches.values())
    bar = tqdm(total=num_simulations, initial=min(done, num_simulations),
               desc=f"SBC {model_label}: {engine_label}", disable=not progress,
               mininterval=0.5)
    try:
        for batch in range(num_batches):
            indices = range(batch * batch_size, min((batch + 1) * batch_size, num_simulations))
            if batch in batches:
                continue
            rows = [
                _one_simulation(posterior, keys, rankable, names, i, seed, num_draws, thin,
                                runner, trained, variational)
                for i in _progress(indices, bar)
            ]
            arrays = {
                "index": np.asarray(list(indices)),
                "ranks": np.stack([r[0] for r in rows]),
                "theta_true": np.stack([r[1] for r in rows]),
                **{k: np.asarray([r[2][k] for r in rows]) for k in _SIM_STATS},
            }
            if directory is not None:
                _write_batch(directory, batch, arrays)
            batches[batch] = arrays
    finally:
        bar.close()
    posterior.check_theta_unchanged(before, f"SBC with engine {engine_label!r}")

    ordered = [batches[b] for b in range(num_batches)]
    cat = lambda k: np.concatenate([b[k] for b in ordered])[:num_simulations]  # noqa: E731
    sim_stats = pd.DataFrame({k: cat(k) for k in _SIM_STATS})
    sim_stats["under_thinned"] = sim_stats["under_thinned"].astype(bool)
    sim_stats["seed"] = sim_stats["seed"].astype(np.int64)
    result = SBCResult(
        ranks=cat("ranks").astype(np.int64), theta_true=cat("theta_true"), param_names=names,
        num_draws=int(num_draws), sim_stats=sim_stats, engine=engine_label,
        variational=variational, model=model_label, alpha=float(alpha), bins=int(bins),
        attrs={**settings, "num_simulations": int(num_simulations)},
    )
    if sim_stats["under_thinned"].any():
        log.warning("%d of %d simulations had fewer than L=%d draws after ESS thinning; their "
                    "draws are autocorrelated (raise num_samples)",
                    int(sim_stats["under_thinned"].sum()), num_simulations, num_draws)
    return result


def _progress(indices, bar):
    for i in indices:
        yield i
        bar.update(1)


def _one_simulation(posterior, keys, rankable, names, index, seed, num_draws, thin, runner,
                    trained, variational):
    """One SBC step: simulate, infer, rank. :returns: (ranks (P,), theta (P,), stats)."""
    from ..infer import guide_draws

    sim_seed, infer_seed = _seeds_for(seed, index)
    start = time.perf_counter()
    theta, data = _simulate(posterior, keys, list(rankable), sim_seed)
    theta_flat = _flat({k: v[None] for k, v in theta.items()}, list(rankable))
    truth = np.array([theta_flat[n][0] for n in names])
    try:
        if trained is not None:
            guide, param_state = trained
            simulated = Posterior(posterior.model, guide, data, posterior.params, name=posterior.name)
            sim_sites = simulated.validate()  # also checks the guide on the new data
            with simulated.session() as (model, private_guide):
                store = pyro.get_param_store()
                for key, value in param_state.items():
                    store[key] = value.detach().clone()
                pyro.set_rng_seed(infer_seed)
                values, _ = guide_draws(model, private_guide, data, sim_sites, num_draws)
            flat = _flat(values, list(rankable))
            draws = np.stack([flat[n] for n in names], axis=-1)
            extra = (math.nan, 1, False)
        else:
            simulated = Posterior(posterior.model, posterior.guide, data, posterior.params,
                                  name=posterior.name)
            idata = runner.run(simulated, seed=infer_seed, progress=False).idata
            draws, extra = _engine_draws(idata, names, num_draws, thin, variational)
    except (RuntimeError, ValueError) as exc:
        raise RuntimeError(f"SBC simulation {index} (seed {sim_seed}) failed: "
                           f"{type(exc).__name__}: {exc}") from exc
    rng = np.random.default_rng(sim_seed)
    ranks = sbc_stats.rank_of(truth, draws, rng)
    stats_row = dict(zip(_SIM_STATS, (sim_seed, *extra, time.perf_counter() - start)))
    return ranks, truth, stats_row
