"""Run several engines on the same posterior and tabulate how they differ."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .. import diagnostics
from ..infer import Engine, EngineResult, UserEngine, get_engine
from ..infer.base import EngineContractError
from ..fingerprint import difference, fingerprint, from_attrs, to_attrs
from ..io import StaleFileError, check_writable, load_netcdf, save_netcdf
from .._validate import check_seed
from ..posterior import Posterior
from ..reference import Reference

log = logging.getLogger(__name__)

__all__ = ["compare", "Comparison"]


@dataclass
class Comparison:
    """Results of several engines on one posterior.

    :ivar idata: engine name -> ``arviz.InferenceData``.
    :ivar reference: the reference posterior, or ``None`` (distances are then to NUTS).
    :ivar engines: engine name -> the engine (:class:`~ppl_genmodels.infer.Engine`) that ran.
    :ivar results: engine name -> its :class:`~ppl_genmodels.infer.EngineResult` (VI: the
        fitted ``guide`` and ``param_state``); ``guide`` is ``None`` for a result reused
        from ``checkpoint_dir``.
    :ivar failures: engine name -> ``"ExceptionType: message"`` for each engine that raised
        while running (``compare(on_error="record")``); those engines have no ``idata``.
    """

    posterior_name: str
    idata: dict[str, Any]
    reference: Reference | None = None
    engines: dict[str, Engine] = field(default_factory=dict)
    results: dict[str, EngineResult] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    _summaries: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _table: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def summary(self, engine: str) -> pd.DataFrame:
        """:func:`ppl_genmodels.diagnostics.parameter_summary` of one engine's result,
        computed once per result object (``az.summary`` is the slow part of the tables)."""
        idata = self.idata[engine]
        key, cached = self._summaries.get(engine, (None, None))
        if key is not idata:
            cached = diagnostics.parameter_summary(idata)
            self._summaries[engine] = (idata, cached)
        return cached

    @property
    def baseline(self) -> str | None:
        """What distances are measured to: ``"reference"``, ``"nuts"`` or ``None``."""
        if self.reference is not None:
            return "reference"
        return "nuts" if "nuts" in self.idata else None

    @property
    def warnings(self) -> dict[str, list[str]]:
        """Engine name -> :func:`ppl_genmodels.diagnostics.engine_warnings` (Stan-style
        messages naming parameters or chains; empty when nothing fired)."""
        out = {name: diagnostics.engine_warnings(idata, self.summary(name))
               for name, idata in self.idata.items()}
        out.update({name: [f"the engine failed and left no result: {message}"]
                    for name, message in self.failures.items()})
        return out

    @property
    def engine_table(self) -> pd.DataFrame:
        """One row per engine: ``verdict`` (*trust* / *caution* / *do not trust*) and the
        diagnostics it rests on (``because``; :func:`ppl_genmodels.diagnostics.verdict`),
        ``wall_time_s`` (s), ``grad_evals``; MCMC: ``divergences``, ``max_r_hat``,
        ``max_r_hat_nested`` (only when some run has superchains), ``min_ess_bulk``,
        ``min_ess_tail``, ``min_e_bfmi``, ``tree_depth_saturation``
        (fraction); VI: ``elbo``, ``elbo_se``, ``log_evidence``, ``log_evidence_se`` (nats)
        and PSIS ``k_hat``; the mean over parameters of ``std_mean_error`` and ``sd_ratio``
        against the baseline, ``mean_psis_std_mean_error`` (VI, PSIS-corrected means) and,
        with a reference, ``gym_pass_fraction`` (share of parameters passing
        :func:`ppl_genmodels.diagnostics.reference_check`). NaN where not applicable. An
        engine that failed (``failures``) gets a row *do not trust* whose ``because`` is
        its error, every diagnostic NaN."""
        rows = {}
        for name, idata in self.idata.items():
            summary = self.summary(name)
            label, reason = diagnostics.verdict(idata, summary)
            rows[name] = {"verdict": label, "because": reason,
                          **diagnostics.engine_diagnostics(idata, summary)}
        table = pd.DataFrame.from_dict(rows, orient="index")
        if table["max_r_hat_nested"].isna().all():  # no run had superchains
            table = table.drop(columns="max_r_hat_nested")
        params = self.table
        grouped = params.groupby(level="engine", sort=False)
        if "std_mean_error" in params:
            table["mean_std_mean_error"] = grouped["std_mean_error"].mean()
            table["max_std_mean_error"] = grouped["std_mean_error"].max()
            table["mean_sd_ratio"] = grouped["sd_ratio"].mean()
        if "psis_std_mean_error" in params:
            table["mean_psis_std_mean_error"] = grouped["psis_std_mean_error"].mean()
        if "gym_passed" in params:
            table["gym_pass_fraction"] = grouped["gym_passed"].mean()
        if self.failures:
            failed = pd.DataFrame.from_dict(
                {name: {"verdict": "do not trust", "because": f"engine failed: {message}"}
                 for name, message in self.failures.items()}, orient="index")
            table = pd.concat([table, failed])
        table.index.name = "engine"
        return table

    def baseline_moments(self) -> tuple[dict, dict]:
        """Parameter -> mean and parameter -> sd (model units) of the baseline: the
        reference's moments, NUTS's draws' (sd with ddof=1), or two empty dicts."""
        if self.baseline == "reference":
            return dict(self.reference.mean), dict(self.reference.sd)
        if self.baseline == "nuts":
            draws = diagnostics.flat_draws(self.idata["nuts"])
            return ({k: float(v.mean()) for k, v in draws.items()},
                    {k: float(v.std(ddof=1)) for k, v in draws.items()})
        return {}, {}

    def _gym_applies(self) -> bool:
        """Inference Gym's test needs the reference's MCSE for every parameter (0 for
        closed forms); without it the tolerance would be too tight."""
        ref = self.reference
        return ref is not None and set(ref.mean) <= set(ref.mcse_mean)

    def _inputs(self) -> tuple:
        """What the tables are computed from: the engine names with their result objects,
        and the reference (held, so compared by identity without id reuse)."""
        return tuple(self.idata.items()), self.reference

    @property
    def table(self) -> pd.DataFrame:
        """:meth:`parameter_table`, computed once and recomputed only when an entry of
        ``idata`` or ``reference`` is replaced (changes made inside an InferenceData in
        place are not seen; assign a new one). Do not modify the returned frame."""
        inputs = self._inputs()
        if self._table is not None:
            (items, reference), cached = self._table
            if (reference is inputs[1] and len(items) == len(inputs[0])
                    and all(a[0] == b[0] and a[1] is b[1] for a, b in zip(items, inputs[0]))):
                return cached
        table = self.parameter_table()
        self._table = (inputs, table)
        return table

    def parameter_table(self) -> pd.DataFrame:
        """One row per (engine, parameter): ``mean``, ``sd``, ``mcse_mean``, ``mcse_sd``,
        ``ess_bulk``, ``ess_tail``, ``r_hat`` (``az.summary``) and, against the baseline,
        ``std_mean_error`` = |mean - ref_mean| / ref_sd, ``sd_ratio``, ``wasserstein``.

        Engines with ``log_weight`` (VI) add PSIS-corrected moments
        (:func:`ppl_genmodels.diagnostics.psis_moments`): ``psis_mean``, ``psis_sd`` and
        ``psis_std_mean_error`` = |psis_mean - ref_mean| / ref_sd; NaN for other engines.
        With a reference that has MCSEs, ``gym_passed`` is Inference Gym's mean test
        (:func:`ppl_genmodels.diagnostics.reference_check`; NaN where the parameter has no
        reference)."""
        baseline = self.baseline
        ref_draws = None
        if baseline == "nuts":
            ref_draws = diagnostics.flat_draws(self.idata["nuts"])
        base_mean, base_sd = self.baseline_moments()
        has_weights = any(_has_log_weight(d) for d in self.idata.values())
        frames = []
        for name, idata in self.idata.items():
            summary = self.summary(name)
            if baseline == "reference":
                dist = diagnostics.reference_distances(diagnostics.flat_draws(idata), self.reference)
                summary = summary.join(dist)
            elif baseline == "nuts" and name != "nuts":
                dist = diagnostics.reference_distances(
                    diagnostics.flat_draws(idata), reference_draws=ref_draws
                )
                summary = summary.join(dist)
            elif baseline == "nuts":
                summary = summary.assign(std_mean_error=np.nan, sd_ratio=np.nan, wasserstein=np.nan)
            if has_weights:
                summary = summary.join(self._psis_columns(name, base_mean, base_sd))
            if self._gym_applies():
                check = diagnostics.reference_check(idata, self.reference, summary=self.summary(name))
                summary["gym_passed"] = check["passed"].reindex(summary.index).astype(float)
            summary.index.name = "parameter"
            frames.append(summary.assign(engine=name).set_index("engine", append=True))
        table = pd.concat(frames).reorder_levels(["engine", "parameter"])
        return table

    def _psis_columns(self, name: str, base_mean: dict, base_sd: dict) -> pd.DataFrame:
        idata = self.idata[name]
        index = self.summary(name).index
        columns = ["psis_mean", "psis_sd", "psis_std_mean_error"]
        if not _has_log_weight(idata):
            return pd.DataFrame(np.nan, index=index, columns=columns)
        moments = diagnostics.psis_moments(diagnostics.flat_draws(idata),
                                           idata.sample_stats["log_weight"].values)
        moments = moments.reindex(index)
        error = [abs(m - base_mean[p]) / base_sd[p] if p in base_mean else np.nan
                 for p, m in moments["psis_mean"].items()]
        return moments[["psis_mean", "psis_sd"]].assign(psis_std_mean_error=error)

    def save(self, directory: str | Path, figures: bool = True,
             extra_sections: Iterable[tuple[str, str, Iterable[str | Path]]] = ()) -> Path:
        """Write ``<engine>.nc`` files, ``summary.csv``, ``engines.csv``, ``report.md``,
        ``report.html`` and PNG figures into ``directory`` (each file atomically); see
        :func:`ppl_genmodels.harness.report.write_report` for ``extra_sections``.
        :returns: the path of ``report.md``."""
        from .report import write_report

        return write_report(self, Path(directory), figures=figures, extra_sections=extra_sections)


def _has_log_weight(idata) -> bool:
    return "sample_stats" in idata.groups() and "log_weight" in idata.sample_stats


def _resolve(engines, engine_config: Mapping[str, Mapping] | None) -> dict[str, Engine]:
    resolved = {}
    for spec in engines:
        engine = get_engine(spec, **dict((engine_config or {}).get(spec, {}))) \
            if isinstance(spec, str) else get_engine(spec)
        if engine.name in resolved:
            raise ValueError(f"two engines are named {engine.name!r}; names must be unique")
        resolved[engine.name] = engine
    if not resolved:
        raise ValueError("no engines given")
    return resolved


def _settings(engine: Engine) -> dict:
    """An engine's config: its dataclass fields (a user engine's, if it is one), else {}."""
    settings = engine.engine if isinstance(engine, UserEngine) else engine
    if not is_dataclass(settings):
        return {}
    return {f.name: getattr(settings, f.name) for f in fields(settings)}


def _cached(path: Path, fp: dict, strict: bool):
    """A finished run saved by an earlier, interrupted comparison, if its fingerprint
    (:mod:`ppl_genmodels.fingerprint`: model, guide, data, theta, engine config, seed,
    version) matches ``fp``.

    :param strict: on a mismatch raise instead of logging a warning and returning ``None``.
    :raises DamagedFileError: the file cannot be read.
    :raises StaleFileError: ``strict`` and the file was made from other inputs.
    """
    if not path.exists():
        return None
    idata = load_netcdf(path)
    why = difference(from_attrs(idata.posterior.attrs), fp)
    if why is None:
        return idata
    message = f"{path} was made from {why}"
    if strict:
        raise StaleFileError(f"{message}; rerun with --force or delete it")
    log.warning("%s; running the engine again", message)
    return None


def compare(
    posterior: Posterior,
    engines: Iterable[Any] = ("svi", "rws", "nuts"),
    seed: int = 0,
    reference: Reference | None = None,
    engine_config: Mapping[str, Mapping] | None = None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    strict_resume: bool = False,
    on_error: str = "record",
) -> Comparison:
    """Run every engine on the same posterior and collect their InferenceData.

    All validation (the posterior's and each engine's ``validate``) happens before any
    engine starts. Every engine gets the same ``seed``, its own param store and its own
    copy of the guide; theta is checked bit-for-bit after each engine.

    :param posterior: the target p(z | x, theta).
    :param engines: built-in names (``"svi"``, ``"rws"``, ``"nuts"``) and/or engine objects
        (:class:`~ppl_genmodels.infer.Engine`, or anything with ``name`` and
        ``run(posterior, seed) -> InferenceData``, adapted by ``get_engine``).
    :param seed: seed given to every engine.
    :param reference: reference posterior; without one, distances are to NUTS. Its
        parameters may be named by position (``theta[0]``) or by the posterior's coords
        (``theta[Choate]``); positions are moved onto the coords.
    :param engine_config: name -> keyword arguments for built-in engines given by name.
    :param progress: show tqdm progress bars.
    :param checkpoint_dir: if given, each finished engine's result is written there at once
        (``<name>.nc``, its fingerprint in the attribute ``fingerprint``) and reused by a
        later call whose fingerprint matches (same model and guide source, data, theta,
        engine config, seed and package version), so an interrupted comparison resumes
        without redoing finished engines. The folder is checked for writability first.
    :param resume: reuse matching results in ``checkpoint_dir`` (``False``: run every
        engine again and replace them).
    :param strict_resume: a saved result with another fingerprint raises
        :class:`~ppl_genmodels.io.StaleFileError` naming what differs (default: a warning
        naming it, and the engine runs again).
    :param on_error: what an engine that raises while running does to the comparison:
        ``"record"`` (default) logs a warning, keeps the error in ``Comparison.failures``
        and goes on with the other engines (the finished ones are kept, and saved in
        ``checkpoint_dir`` as they finish); ``"raise"`` re-raises at once. Validation errors,
        a changed theta, an engine breaking the contract
        (:class:`~ppl_genmodels.infer.base.EngineContractError`, e.g. ``run`` returning a dict)
        and ``KeyboardInterrupt`` always raise.
    :returns: :class:`Comparison`.
    :raises ValueError: invalid posterior, engine spec, settings or engine/posterior
        combination, or ``seed`` not an integer >= 0 -- all before any engine runs or any
        file is written; :class:`~ppl_genmodels.io.OutputFolderError` (a ``ValueError``):
        ``checkpoint_dir`` is a file or not writable; :class:`~ppl_genmodels.io.DamagedFileError`:
        a saved result cannot be read; ``StaleFileError``: see ``strict_resume``.
    :raises RuntimeError: an engine changed theta, or every engine failed (the message
        names each error).
    """
    check_seed(seed)
    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
    if not isinstance(posterior, Posterior):
        raise ValueError(f"posterior must be a ppl_genmodels.Posterior, not {type(posterior).__name__}")
    if isinstance(engines, str):
        raise ValueError(f"engines must be a list of engines, not the string {engines!r} "
                         f"(write [{engines!r}])")
    resolved = _resolve(engines, engine_config)
    posterior.validate()
    for engine in resolved.values():
        engine.validate(posterior)
    if checkpoint_dir:
        check_writable(checkpoint_dir)
    before = posterior.theta()
    results, failures = {}, {}
    for name, engine in resolved.items():
        path = Path(checkpoint_dir) / f"{name}.nc" if checkpoint_dir else None
        fp = fingerprint(posterior, name, _settings(engine), seed) if path else {}
        idata = _cached(path, fp, strict_resume) if path and resume else None
        if idata is None:
            try:
                results[name] = engine.run(posterior, seed, progress=progress)
            except Exception as exc:  # noqa: BLE001 -- one engine's crash is a result
                posterior.check_theta_unchanged(before, f"engine {name!r}")
                if on_error == "raise" or isinstance(exc, EngineContractError):
                    raise
                failures[name] = f"{type(exc).__name__}: {exc}"
                log.warning("engine %r failed on %s, going on without it: %s", name,
                            posterior.name, failures[name], exc_info=True)
                continue
            posterior.check_theta_unchanged(before, f"engine {name!r}")
            if path:
                results[name].idata.posterior.attrs.update(to_attrs(fp))
                save_netcdf(results[name].idata, path)
        else:
            results[name] = EngineResult(idata)
    if not results:
        raise RuntimeError("every engine failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    idata = {name: result.idata for name, result in results.items()}
    if reference is not None and posterior.coords:
        # references written with positions (theta[0]) move onto the results' labels
        # (theta[Choate])
        reference = reference.relabel(posterior.parameter_labels())
    return Comparison(posterior.name, idata, reference, resolved, results, failures)
