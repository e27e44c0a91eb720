"""NUTS speed: the ensemble sampler ``ppl_genmodels.infer.NUTS`` against NumPyro and Pyro.

One process, side by side, per posterior (eight_schools, kidiq, logistic_regression):

- NumPyro NUTS, 4 chains ``chain_method="vectorized"`` and 2 chains ``"sequential"``
  (1000 warm-up + 1000 draws each): the first ``mcmc.run`` (compile + run), a second
  ``mcmc.run`` with another key on the same ``MCMC`` object (which still recompiles the
  sampling loop: see :func:`numpyro_rows`), and ``jax.jit`` of a whole run called twice;
  its second call is NumPyro "already compiled", the reference of the ratios;
- Pyro's ``MCMC(NUTS)`` through our ``pyro_nuts`` engine, without and with ``jit_compile``
  (2 chains);
- ours, ``NUTS(compile="fx")`` and ``NUTS(compile="inductor")`` at the chain counts and
  budgets given by ``--ours`` (K chains x W warm-up + S draws).

Every contender uses target acceptance 0.8, max tree depth 10, a diagonal mass matrix and
initial points uniform in (-2, 2) unconstrained. Wall time includes warm-up and, for ours,
building/recording/compiling the potential (``potential_setup_s``); for NumPyro's first run
it includes JAX's compile. Min bulk ESS is ``az.ess(method="bulk")`` minimised over every
scalar of the sites all contenders report (latent and deterministic sites); R-hat is
ArviZ's rank-normalized split R-hat. Means are checked against NumPyro's compiled 4-chain
run (the second jitted call): max over scalars of |mean - mean_numpyro| / sqrt(MCSE^2 + MCSE_numpyro^2).

Usage (repository root; ``pip install -e .[bench]`` for numpyro and jax)::

    python bench/nuts_speed.py --markdown bench/runs/nuts_speed.md
    python bench/nuts_speed.py --quick --skip-pyro
    python bench/nuts_speed.py --posteriors eight_schools --ours 64x300x300,128x200x200

Inductor note: until commit "NUTS schedule 'async'" the engine traced its leapfrog leaf with
aliased example arguments and its ``compile="inductor"`` sampler was wrong (found by this
benchmark; fixed in the engine, tested by ``tests/infer/test_ensemble_nuts.py``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import arviz as az  # noqa: E402

POSTERIORS = ("eight_schools", "kidiq", "logistic_regression")
# Sites compared per posterior (latent and deterministic; every contender reports them).
SITES = {
    "eight_schools": ("mu", "tau", "theta_trans", "theta"),
    "kidiq": ("alpha", "slope", "sigma", "beta"),
    "logistic_regression": ("b", "w"),
}


# --- NumPyro models: the same priors, parameterization and data as ppl_genmodels.models --
def numpyro_models():
    import numpyro
    import numpyro.distributions as ndist
    from numpyro.distributions import constraints
    import jax.numpy as jnp

    def eight_schools(y, sigma):
        mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", ndist.HalfCauchy(5.0))
        with numpyro.plate("schools", y.shape[-1]):
            theta_trans = numpyro.sample("theta_trans", ndist.Normal(0.0, 1.0))
            theta = numpyro.deterministic("theta", mu + tau * theta_trans)
            numpyro.sample("y", ndist.Normal(theta, sigma), obs=y)

    def kidiq(kid_score, mom_iq):
        centre = mom_iq.mean()
        # flat priors on alpha and slope (log density 0), as the Pyro model's masked Normal
        alpha = numpyro.sample("alpha", ndist.ImproperUniform(constraints.real, (), ()))
        slope = numpyro.sample("slope", ndist.ImproperUniform(constraints.real, (), ()))
        numpyro.deterministic("beta", jnp.stack([alpha - slope * centre, slope], -1))
        sigma = numpyro.sample("sigma", ndist.HalfCauchy(2.5))
        with numpyro.plate("data", mom_iq.shape[-1]):
            numpyro.sample("kid_score", ndist.Normal(alpha + slope * (mom_iq - centre), sigma),
                           obs=kid_score)

    def logistic_regression(x, y):
        d = x.shape[-1]
        b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
        w = numpyro.sample("w", ndist.Normal(jnp.zeros(d), 1.0).to_event(1))
        with numpyro.plate("data", x.shape[-2]):
            numpyro.sample("y", ndist.Bernoulli(logits=b + (w * x).sum(-1)), obs=y)

    return {"eight_schools": eight_schools, "kidiq": kidiq,
            "logistic_regression": logistic_regression}


@dataclass
class Row:
    contender: str
    settings: str
    wall_s: float
    draws: dict  # site -> (chain, draw, ...) numpy
    divergences: int
    grads_total: int | None  # gradient evaluations incl. warm-up (None: not reported)
    grads_sampling: int | None
    compile_s: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def idata(self):
        return az.from_dict(posterior=self.draws)


def _summary(row: Row) -> dict:
    idata = row.idata()
    ess = az.ess(idata, method="bulk")
    rhat = az.rhat(idata)
    min_ess = min(float(np.nanmin(ess[k].values)) for k in ess.data_vars)
    max_rhat = max(float(np.nanmax(rhat[k].values)) for k in rhat.data_vars)
    chains, draws = next(iter(row.draws.values())).shape[:2]
    return {"min_ess": min_ess, "ess_per_s": min_ess / row.wall_s, "max_rhat": max_rhat,
            "chains": chains, "draws": draws}


def _mean_check(row: Row, ref: Row) -> float:
    """max over scalars |mean - mean_ref| / sqrt(mcse^2 + mcse_ref^2)."""
    a, b = row.idata(), ref.idata()
    ma, mb = az.mcse(a, method="mean"), az.mcse(b, method="mean")
    worst = 0.0
    for k in row.draws:
        diff = np.abs(a.posterior[k].mean(("chain", "draw")).values
                      - b.posterior[k].mean(("chain", "draw")).values)
        se = np.sqrt(ma[k].values ** 2 + mb[k].values ** 2)
        worst = max(worst, float(np.nanmax(diff / se)))
    return worst


# --- contenders --------------------------------------------------------------------
def numpyro_rows(name, data, num_chains, method, warmup, samples, seed):
    """Four rows: ``mcmc.run`` twice on one ``MCMC`` object, then ``jax.jit`` of a whole
    run (build MCMC, run, collect) called twice with different keys.

    The second ``mcmc.run`` is *not* free of compilation: NumPyro's ``fori_collect`` jits a
    fresh closure on every call, so XLA recompiles the sampling loop (about 4 s here; seen
    with ``jax_log_compiles``). Only the second call of the jitted run reuses the compiled
    executable: that row is NumPyro "already compiled", the reference of the ratios.
    """
    import jax
    from numpyro.infer import MCMC, NUTS as NNUTS

    model = numpyro_models()[name]
    args = {k: jax.numpy.asarray(v.numpy()) for k, v in data.items()}
    setting = f"{num_chains} ch {method}, {warmup}+{samples}"

    def make():
        kernel = NNUTS(model, target_accept_prob=0.8, max_tree_depth=10)
        return MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=num_chains,
                    chain_method=method, progress_bar=False)

    def row(label, wall, samples_, extra, note=""):
        return Row(label, setting, wall, {k: np.asarray(samples_[k]) for k in SITES[name]},
                   int(np.asarray(extra["diverging"]).sum()), None,
                   int(np.asarray(extra["num_steps"]).sum()), note=note)

    rows = []
    mcmc = make()
    for run, key in enumerate((seed, seed + 1)):
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(key), extra_fields=("num_steps", "diverging"), **args)
        samples_ = mcmc.get_samples(group_by_chain=True)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        jax.block_until_ready((samples_, extra))
        wall = time.perf_counter() - start
        rows.append(row(f"NumPyro mcmc.run, {'1st (compile + run)' if run == 0 else '2nd call'}",
                        wall, samples_, extra,
                        "" if run == 0 else f"key {key}; the same MCMC object, but XLA "
                        "recompiles its sampling loop (fori_collect jits a new closure)"))

    def whole_run(key):
        m = make()
        m.run(key, extra_fields=("num_steps", "diverging"), **args)
        return m.get_samples(group_by_chain=True), m.get_extra_fields(group_by_chain=True)

    jitted = jax.jit(whole_run)
    for run, key in enumerate((seed + 2, seed + 3)):
        start = time.perf_counter()
        samples_, extra = jitted(jax.random.PRNGKey(key))
        jax.block_until_ready((samples_, extra))
        wall = time.perf_counter() - start
        rows.append(row(f"NumPyro jit(run), {'1st (compile + run)' if run == 0 else '2nd: already compiled'}",
                        wall, samples_, extra, f"key {key}"))
    return rows


def pyro_row(posterior, name, jit, warmup, samples, seed):
    from ppl_genmodels.infer import PyroNUTS

    engine = PyroNUTS(num_samples=samples, warmup_steps=warmup, num_chains=2, jit_compile=jit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = engine.run(posterior, seed=seed, progress=False)
    idata = res.idata
    draws = {k: idata.posterior[k].values for k in SITES[name]}
    stats = idata.sample_stats
    return Row("Pyro MCMC(NUTS)" + (", jit_compile=True" if jit else ", no jit"),
               f"2 ch sequential, {warmup}+{samples}", float(idata.attrs["wall_time_s"]),
               draws, int(stats["diverging"].values.sum()), int(idata.attrs["grad_evals"]),
               int(stats["n_steps"].values.sum()))


def ours_row(posterior, name, compile_, chains, warmup, samples, seed, schedule="async", tag=""):
    from ppl_genmodels.infer import NUTS

    engine = NUTS(num_samples=samples, warmup_steps=warmup, num_chains=chains,
                  target_accept_prob=0.8, max_tree_depth=10, compile=compile_, schedule=schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = engine.run(posterior, seed=seed, progress=False)
    idata = res.idata
    attrs = idata.attrs
    draws = {k: idata.posterior[k].values for k in SITES[name]}
    stats = idata.sample_stats
    label = f"ours NUTS(compile=\"{compile_}\")"
    if tag:
        label += f" ({tag})"
    note = (f"potential {attrs['potential_mode']}/{attrs['potential_compiled']}, lockstep waste "
            f"{attrs['lockstep_waste']:.2f}, {attrs['grad_evals_lockstep']} grads computed, "
            f"{attrs['warmup_divergences']} warm-up div.")
    return Row(label, f"{chains} ch {schedule}, {warmup}+{samples}", float(attrs["wall_time_s"]),
               draws, int(stats["diverging"].values.sum()), int(attrs["grad_evals"]),
               int(stats["n_steps"].values.sum()), compile_s=float(attrs["potential_setup_s"]),
               note=note)


# --- table -------------------------------------------------------------------------
HEADER = ("| contender | settings | wall (s) | of which setup/compile (s) | min bulk ESS | min-ESS/s "
          "| max R-hat | div. | grads (total / sampling) | vs NumPyro jit(run) compiled "
          "| vs NumPyro mcmc.run 2nd | max abs dmean/MCSE |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def table(rows: list[Row], ref: Row, ref2: Row) -> str:
    ref_rate = _summary(ref)["ess_per_s"]
    ref2_rate = _summary(ref2)["ess_per_s"]
    lines = [HEADER]
    for row in rows:
        s = _summary(row)
        compile_s = "" if row.compile_s is None else f"{row.compile_s:.1f}"
        grads = (f"{row.grads_total if row.grads_total is not None else 'n/a'} / "
                 f"{row.grads_sampling if row.grads_sampling is not None else 'n/a'}")
        lines.append(
            f"| {row.contender} | {row.settings} | {row.wall_s:.{2 if row.wall_s < 10 else 1}f} | {compile_s} | "
            f"{s['min_ess']:.0f} | {s['ess_per_s']:.0f} | {s['max_rhat']:.3f} | "
            f"{row.divergences} | {grads} | {s['ess_per_s'] / ref_rate:.3f} | "
            f"{s['ess_per_s'] / ref2_rate:.2f} | "
            f"{_mean_check(row, ref):.2f} |")
    notes = [f"- {r.contender} ({r.settings}): {r.note}" for r in rows if r.note]
    return "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "")


def parse_ours(spec: str) -> list[tuple[int, int, int, str]]:
    """``KxWxS[:schedule]``, comma-separated -> (chains, warm-up, draws, schedule)."""
    out = []
    for part in spec.split(","):
        sizes, _, schedule = part.partition(":")
        k, w, s = (int(v) for v in sizes.lower().split("x"))
        out.append((k, w, s, schedule or "lockstep"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posteriors", default=",".join(POSTERIORS))
    parser.add_argument("--quick", action="store_true",
                        help="NumPyro/Pyro 300+300, ours 64x150x150, fx only")
    parser.add_argument("--skip-pyro", action="store_true")
    parser.add_argument("--skip-inductor", action="store_true")
    parser.add_argument("--ours", default="64x300x300",
                        help="chains x warm-up x draws[:async|lockstep], comma-separated "
                             "(default 64x300x300, schedule lockstep: the engine default)")
    parser.add_argument("--pyro-iters", type=int, default=None,
                        help="Pyro warm-up = draws (default: as NumPyro, 1000; --quick 300)")
    parser.add_argument("--pyro-iters-large", type=int, default=None,
                        help="Pyro warm-up = draws for kidiq/logistic_regression (default "
                             "--pyro-iters)")
    parser.add_argument("--inductor-cold", action="store_true",
                        help="point TORCHINDUCTOR_CACHE_DIR at a fresh folder, so the inductor "
                             "rows pay a cold compile, then rerun the first inductor setting "
                             "once more on the now warm on-disk cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu",
                        help="torch device of our rows (cpu or cuda[:N]); NumPyro runs where "
                             "JAX_PLATFORMS says (cpu unless set) and Pyro on the CPU")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.inductor_cold:
        import tempfile

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="nuts_speed_inductor_")
    from ppl_genmodels.models import get_model
    import jax
    import numpyro
    import pyro

    iters = 300 if args.quick else 1000
    pyro_iters = args.pyro_iters or iters
    pyro_iters_large = args.pyro_iters_large or pyro_iters
    ours = [(64, 150, 150, "lockstep")] if args.quick else parse_ours(args.ours)
    compiles = ["fx"] + ([] if (args.quick or args.skip_inductor) else ["inductor"])

    header = [
        f"# NUTS speed ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        f"torch {torch.__version__} ({torch.get_num_threads()} thread), pyro {pyro.__version__}, "
        f"numpyro {numpyro.__version__}, jax {jax.__version__} ({jax.default_backend()}), "
        f"arviz {az.__version__}, python {platform.python_version()}; "
        f"ours on {args.device}"
        f"{' (' + torch.cuda.get_device_name(args.device) + ')' if args.device.startswith('cuda') else ''}; "
        f"load average at start {os.getloadavg()[0]:.2f}",
    ]
    print("\n".join(header), flush=True)
    sections = ["\n".join(header)]
    for name in args.posteriors.split(","):
        posterior = get_model(name).posterior()
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        rows: list[Row] = []
        vec = numpyro_rows(name, posterior.data, 4, "vectorized", iters, iters, args.seed)
        rows += vec
        rows += numpyro_rows(name, posterior.data, 2, "sequential", iters, iters, args.seed)
        ref, ref_run2 = vec[3], vec[1]
        print(f"[{name}] numpyro done ({time.perf_counter() - t0:.0f} s)", flush=True)
        if not args.skip_pyro:
            n = pyro_iters if name == "eight_schools" else pyro_iters_large
            for jit in (False, True):
                rows.append(pyro_row(posterior, name, jit, n, n, args.seed))
                print(f"[{name}] pyro jit={jit} {rows[-1].wall_s:.1f} s", flush=True)
        runs = [(c, k, w, s, sch, "") for c in compiles for k, w, s, sch in ours]
        if args.inductor_cold and "inductor" in compiles:
            runs = [r[:5] + ("cold cache",) if r[0] == "inductor" else r for r in runs]
            runs.append(("inductor", *ours[0], "warm cache"))
        for compile_, k, w, s, sch, tag in runs:
            if args.device != "cpu":
                tag = f"{tag}, {args.device}" if tag else args.device
            with torch.device(args.device):
                rows.append(ours_row(posterior.to(args.device), name, compile_, k, w, s,
                                     args.seed, sch, tag))
            print(f"[{name}] ours {compile_} {k}x{w}x{s} {tag}: {rows[-1].wall_s:.1f} s "
                  f"(setup {rows[-1].compile_s:.1f} s)", flush=True)
        text = (f"## {name}\n\nsites {', '.join(SITES[name])}; reference rows for the ratios: "
                f"{ref.contender} and {ref_run2.contender} ({ref.settings}); mean check against "
                f"the first; load average "
                f"{load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
                f"{time.perf_counter() - t0:.0f} s for this posterior\n\n" + table(rows, ref, ref_run2))
        print("\n" + text + "\n", flush=True)
        sections.append(text)
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
