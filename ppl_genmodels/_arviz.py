"""The one module that imports ArviZ.

ArviZ 1.x reorganised its API (``arviz_base``/``arviz_stats``/``arviz_plots`` and
``DataTree`` instead of ``InferenceData``); every call the package makes into ArviZ goes
through this module so that moving to 1.x is a one-file change. Plotting is imported
lazily: it pulls in matplotlib and is not needed to run inference.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

with warnings.catch_warnings():
    # 0.2x announces the 1.x refactor on import; the pin (<1) is how we handle it.
    # the message starts with a newline, which ".*" does not match
    warnings.filterwarnings("ignore", category=FutureWarning, message=r"\s*ArviZ is undergoing")
    import arviz as az



class _SingleChainFilter(logging.Filter):
    """VI results are one chain of iid draws by design; ArviZ's per-call warning that
    R-hat needs two chains says nothing new (R-hat is reported as NaN)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Shape validation failed" not in record.getMessage()


# ArviZ 0.2x logs through its own unregistered ``Logger("arviz")`` (``arviz._log``).
for _logger in {logging.getLogger("arviz"), getattr(az, "_log", None)} - {None}:
    _logger.addFilter(_SingleChainFilter())

from arviz.labels import BaseLabeller, IdxLabeller, MapLabeller  # noqa: E402
from arviz.sel_utils import xarray_var_iter  # noqa: E402

InferenceData = az.InferenceData
from_dict = az.from_dict
dict_to_dataset = az.dict_to_dataset
from_netcdf = az.from_netcdf
summary = az.summary
ess = az.ess
rhat = az.rhat
mcse = az.mcse
bfmi = az.bfmi


def flat_values(dataset, sample_dims=("chain", "draw")) -> dict[str, np.ndarray]:
    """Every scalar component of the variables of ``dataset``, labelled as ``az.summary``
    labels its rows.

    :param dataset: an ``xarray.Dataset`` such as ``idata.posterior``.
    :param sample_dims: the dims kept in each array.
    :returns: label -> float64 array of dims ``sample_dims`` (e.g. ``"theta[3]"``,
        ``"z[1, 0]"``), in the variables' order, last index fastest. Source:
        ``arviz.sel_utils.xarray_var_iter`` and ``arviz.labels.BaseLabeller.make_label_flat``.
    """
    labeller = BaseLabeller()
    return {
        labeller.make_label_flat(var, sel, isel): np.asarray(values, dtype=np.float64)
        for var, sel, isel, values in xarray_var_iter(dataset, skip_dims=set(sample_dims),
                                                      combined=True)
    }


def labeller(var_name_map=None, dim_map=None, coord_map=None) -> BaseLabeller:
    """ArviZ's labeller of scalar parameters: ``az.labels.BaseLabeller`` (``theta[Choate]``
    where the posterior has coords, ``theta[0]`` otherwise), or ``MapLabeller`` when any map
    is given (e.g. ``var_name_map={"theta": "θ"}``). Pass it as ``labeller=`` to ArviZ's plots."""
    if var_name_map or dim_map or coord_map:
        return MapLabeller(var_name_map=var_name_map, dim_map=dim_map, coord_map=coord_map)
    return BaseLabeller()


def coordinate_labels(dataset, sample_dims=("chain", "draw")) -> dict[str, str]:
    """Positional label -> ArviZ label of every scalar component of ``dataset``: e.g.
    ``{"theta[0]": "theta[Choate]"}`` when ``theta`` has a ``school`` coordinate (the
    identity where a dim has the default 0, 1, ... coords). Used to move references written
    with positions (``theta[0]``) onto a result's labels. Source:
    ``arviz.labels.IdxLabeller`` / ``BaseLabeller``."""
    by_index, by_coord = IdxLabeller(), BaseLabeller()
    return {
        by_index.make_label_flat(var, sel, isel): by_coord.make_label_flat(var, sel, isel)
        for var, sel, isel, _ in xarray_var_iter(dataset, skip_dims=set(sample_dims),
                                                 combined=True)
    }


_DATA_GROUPS = ("posterior", "posterior_predictive", "log_likelihood", "prior",
                "prior_predictive", "observed_data", "constant_data")


def apply_dims(idata, dims, coords):
    """``idata`` with ArviZ's default dims (``theta_dim_0``) of the variables named in
    ``dims`` renamed to the declared ones (``school``) and given ``coords``; a dim already
    named, or of another size than its coords, is left as it is (nothing is dropped).

    :param dims: variable -> dim names of its leading non-sample dims
        (``Posterior.dims``); ``coords``: dim -> labels.
    :returns: a new ``InferenceData`` (the same object when nothing changes).
    """
    if not dims:
        return idata
    import xarray as xr

    groups, changed = {}, False
    for group in idata.groups():
        dataset = idata[group]
        if group not in _DATA_GROUPS:
            groups[group] = dataset
            continue
        variables = {}
        for name, array in dataset.data_vars.items():
            own = [d for d in array.dims if d not in ("chain", "draw")]
            rename = {}
            for i, dim in enumerate(dims.get(name, ())[:len(own)]):
                labels = coords.get(dim)
                if own[i] == f"{name}_dim_{i}" and (labels is None
                                                    or len(labels) == array.sizes[own[i]]):
                    rename[own[i]] = dim
            if rename:
                array = array.rename(rename).drop_vars(list(rename), errors="ignore")
                array = array.assign_coords({
                    new: coords.get(new, np.arange(array.sizes[new])) for new in rename.values()})
                changed = True
            variables[name] = array
        groups[group] = xr.Dataset(variables, attrs=dataset.attrs)
    if not changed:
        return idata
    return az.InferenceData(attrs=dict(getattr(idata, "attrs", None) or {}), **groups)


def psislw(log_weights: np.ndarray):
    """Pareto-smoothed log weights and the Pareto shape k-hat.

    :param log_weights: ``(num_draws,)`` log importance weights (nats).
    :returns: ``(smoothed_log_weights, k_hat)``; the weights are normalised (they
        log-sum-exp to 0). Exactly equal log weights (q = p up to a constant) have no tail:
        ArviZ's fit returns ``inf`` there, which would read as the worst possible guide, so
        k-hat is reported as ``-inf`` (the limit of a distribution with bounded support).
        Source: ``arviz.psislw`` (Vehtari et al. 2015/2024).
    """
    values = np.asarray(log_weights, dtype=np.float64).copy()
    lw, k_hat = az.psislw(values.copy())
    k_hat = float(np.asarray(k_hat))
    if values.size and np.ptp(values) == 0.0:
        k_hat = -np.inf
    return np.asarray(lw), k_hat


def plots():
    """Return ArviZ's plotting namespace, importing matplotlib (Agg) on first use."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    return az


def versions() -> dict:
    """Library versions recorded in every result's ``attrs``."""
    import pyro
    import torch

    return {
        "arviz_version": str(az.__version__),
        "pyro_version": str(pyro.__version__),
        "torch_version": str(torch.__version__),  # TorchVersion: h5py rejects str subclasses
        "numpy_version": str(np.__version__),
    }
