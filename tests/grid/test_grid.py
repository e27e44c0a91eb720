"""Grids on Dask: spec checks before any work, resume, and Dask results equal serial ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ppl_genmodels.grid import GridSpecError, load_spec, parse_spec, run_grid
from ppl_genmodels.grid import run as grid_run
from ppl_genmodels.grid.store import task_dir

ROOT = Path(__file__).resolve().parents[2]

# Two SVI tasks of a few milliseconds each: the closed-form model, 20 steps, 2 seeds.
TINY = {"grid": {"seeds": [0, 1]},
        "compare": [{"models": ["normal_normal"], "engines": ["svi"], "quick": True,
                     "budgets": {"svi": [{"num_steps": 20, "num_draws": 50}]}}]}


def _tiny(**changes) -> dict:
    spec = json.loads(json.dumps(TINY))
    spec["compare"][0].update(changes)
    return spec


@pytest.mark.parametrize("raw, message", [
    ({}, "has no tasks"),
    ({"comparisons": []}, r"unknown section\(s\) \['comparisons'\]"),
    ({"grid": {"seed": [0]}, **{k: v for k, v in TINY.items() if k != "grid"}}, r"unknown key\(s\) \['seed'\]"),
    (_tiny(models=["no_such_model"]), r"compare\[0\] models: unknown \['no_such_model'\]"),
    (_tiny(models=["vae_mnist"]), r"unknown \['vae_mnist'\]"),  # fixed-theta models: not a grid compare
    (_tiny(engines=["hmc"]), r"engines: unknown \['hmc'\]"),
    (_tiny(models=["enum_mixture"], engines=["rws"]), r"enum_mixture cannot run engine\(s\) \['rws'\]"),
    (_tiny(seeds=[0, -1]), r"seeds: -1 is not an integer >= 0"),
    (_tiny(seeds=[1, 1]), "repeated values"),
    (_tiny(seeds=[]), "non-empty list"),
    (_tiny(quick="yes"), "quick must be true or false"),
    (_tiny(budgets={"nuts": [{"num_samples": 10}]}), r"budgets for engine\(s\) \['nuts'\] not in engines"),
    (_tiny(budgets={"svi": {"num_steps": 10}}), "budgets.svi must be a non-empty list"),
    (_tiny(stepz=3), r"unknown key\(s\) \['stepz'\]"),
    ({"sbc": [{"model": "normal_normal", "engine": "nuts", "simulations": 5}]}, "simulations must be an integer >= 10"),
    ({"sbc": [{"model": "normal_normal", "engine": "pyro_nuts", "simulations": 20}]}, r"engine: unknown \['pyro_nuts'\]"),
    ({"sbc": [{"model": "normal_normal", "engine": "nuts", "simulations": 20, "alpha": 2}]}, r"alpha must lie in \(0, 1\)"),
    ({"train": [{"model": "vae", "data": "digits", "methods": ["adam"], "epochs": 1}]}, r"methods: unknown \['adam'\]"),
    ({"train": [{"model": "normal_normal", "data": "digits", "methods": ["svi"], "epochs": 1}]}, r"model: unknown"),
    ({"train": [{"model": "vae", "data": "digits", "methods": ["svi"], "epochs": 0}]}, "epochs must be an integer >= 1"),
    ({"train": [{"model": "vae", "data": "mnist", "methods": ["svi"], "epochs": 1, "data_dir": "/no/such"}]}, "is not a folder"),
])
def test_bad_specs_are_refused_naming_the_entry_and_key(raw, message):
    with pytest.raises(GridSpecError, match=message):
        parse_spec(raw, source="x.toml")


@pytest.mark.parametrize("budget, message", [
    ({"num_samples": 10}, r"unknown setting\(s\) \['num_samples'\]"),   # an svi task with a NUTS setting
    ({"num_draws": 0}, "num_draws"),
    ({"lr": -1.0}, "lr"),
])
def test_bad_engine_settings_are_refused_before_any_task_runs(tmp_path, monkeypatch, budget, message):
    spec = parse_spec(_tiny(budgets={"svi": [budget]}))
    monkeypatch.setattr(grid_run, "run_task", _must_not_run)
    with pytest.raises(GridSpecError, match=message):
        run_grid(spec, tmp_path / "out", serial=True, progress=False)
    assert not (tmp_path / "out").exists()


def _must_not_run(task):
    raise AssertionError(f"{task.name} ran")


def test_cli_refuses_a_bad_spec_file_before_any_work(tmp_path, capsys):
    from ppl_genmodels.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('[[compare]]\nmodels = ["normal_normal"]\nengines = ["svi", "hmc"]\n')
    assert main(["grid", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "compare[0] engines: unknown ['hmc']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    notoml = tmp_path / "broken.toml"
    notoml.write_text("[[compare]\n")
    assert main(["grid", str(notoml)]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_example_spec_parses_into_its_tasks():
    spec = load_spec(ROOT / "examples" / "grid.toml")
    kinds = [t.kind for t in spec.tasks]
    assert kinds.count("compare") == 2 * (3 + 2) * 2 and kinds.count("sbc") == 2
    assert len({t.id for t in spec.tasks}) == len(spec.tasks)


def test_task_identity_is_its_settings_and_seed():
    a, b = parse_spec(TINY).tasks
    assert a.id != b.id and a.settings == b.settings and (a.seed, b.seed) == (0, 1)
    assert parse_spec(TINY).tasks[0].id == a.id  # stable
    assert parse_spec(_tiny(quick=False)).tasks[0].id != a.id


def test_resume_skips_finished_tasks_and_runs_only_new_ones(tmp_path, monkeypatch):
    out = tmp_path / "grid"
    first = run_grid(parse_spec(_tiny(seeds=[0])), out, serial=True, progress=False, echo=str,
                     report=False)
    assert (first["ran"], first["skipped"]) == (1, 0)
    ran = []
    real = grid_run.run_task
    monkeypatch.setattr(grid_run, "run_task", lambda task: ran.append(task.seed) or real(task))
    again = run_grid(parse_spec(_tiny(seeds=[0, 1])), out, serial=True, progress=False, echo=str)
    assert (again["ran"], again["skipped"], ran) == (1, 1, [1])
    report = (out / "report.md").read_text()
    assert "2 of 2 task(s) finished" in report and "| normal_normal | svi" in report
    # a task whose result.json is missing (killed before it was written) runs again
    task = parse_spec(_tiny(seeds=[0])).tasks[0]
    (task_dir(out, task) / "result.json").unlink()
    ran.clear()
    run_grid(parse_spec(_tiny(seeds=[0, 1])), out, serial=True, progress=False, echo=str,
             report=False)
    assert ran == [0]


def _results(out: Path) -> dict:
    """Task id -> (summary without wall times, posterior draws)."""
    from ppl_genmodels.io import load_netcdf

    found = {}
    for path in sorted((out / "tasks").glob("*/result.json")):
        record = json.loads(path.read_text())
        summary = {k: v for k, v in record["summary"].items() if k != "wall_time_s"}
        idata = load_netcdf(path.parent / f"{record['task']['settings']['engine']}.nc")
        draws = {k: idata.posterior[k].values for k in idata.posterior.data_vars}
        found[record["task"]["id"]] = (summary, draws)
    return found


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys() and len(a) == 2
    for key in a:
        assert a[key][0] == b[key][0]
        for name, draws in a[key][1].items():
            np.testing.assert_array_equal(draws, b[key][1][name])
    # negative control: the two seeds differ
    first, second = (a[k][1] for k in sorted(a))
    assert not np.array_equal(first["loc"], second["loc"])


def test_dask_in_process_equals_serial(tmp_path):
    from distributed import Client, LocalCluster

    spec = parse_spec(TINY)
    run_grid(spec, tmp_path / "serial", serial=True, progress=False, echo=str)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        run_grid(spec, tmp_path / "dask", client=client, progress=False, echo=str)
    _assert_same(_results(tmp_path / "serial"), _results(tmp_path / "dask"))


@pytest.mark.slow
def test_two_worker_local_cluster_equals_serial(tmp_path):
    spec = parse_spec(TINY)
    run_grid(spec, tmp_path / "serial", serial=True, progress=False, echo=str)
    result = run_grid(spec, tmp_path / "dask", workers=2, dashboard_address=":0",
                      progress=False, echo=str)
    assert result["ran"] == 2
    workers = {json.loads(p.read_text())["worker"] for p in (tmp_path / "dask").glob("tasks/*/result.json")}
    assert len(workers) >= 1
    _assert_same(_results(tmp_path / "serial"), _results(tmp_path / "dask"))


def test_a_failing_task_is_named_and_finished_tasks_stay_saved(tmp_path, monkeypatch, capsys):
    from ppl_genmodels.cli import main

    real = grid_run.run_task

    def second_fails(task):
        if task.seed == 1:
            raise RuntimeError("boom")
        return real(task)

    monkeypatch.setattr(grid_run, "run_task", second_fails)
    spec = tmp_path / "tiny.toml"
    spec.write_text('[grid]\nseeds = [0, 1]\n[[compare]]\nmodels = ["normal_normal"]\n'
                    'engines = ["svi"]\nquick = true\n[compare.budgets]\n'
                    'svi = [{num_steps = 20, num_draws = 50}]\n')
    out = tmp_path / "out"
    assert main(["grid", str(spec), "--out", str(out), "--serial", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "task compare-normal_normal-svi-b0-s1-" in err and "RuntimeError: boom" in err
    assert len(list(out.glob("tasks/*/result.json"))) == 1


@pytest.mark.slow
def test_sbc_batches_and_training_runs_reach_the_report(tmp_path):
    spec = parse_spec({
        "sbc": [{"model": "normal_normal", "engine": "svi", "simulations": 10, "quick": True,
                 "seeds": [0, 1]}],
        "train": [{"model": "vae", "data": "digits", "methods": ["svi", "iwae"], "epochs": 1,
                   "batch_size": 50, "num_train": 200, "seeds": [0],
                   "model_kwargs": {"latent_dim": 2, "hidden": 32}}]})
    run_grid(spec, tmp_path, serial=True, progress=False, echo=str)
    report = (tmp_path / "report.md").read_text()
    assert "normal_normal / svi (2 batches, 20 simulations)" in report
    assert "| loc[0]" in report and "## Training runs" in report and "| iwae" in report
    assert list(tmp_path.glob("tasks/train-vae-svi-*/run/checkpoint.pt"))
