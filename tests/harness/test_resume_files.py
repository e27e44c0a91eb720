"""compare(checkpoint_dir=...): saved results are keyed on a fingerprint of everything that
defines the posterior; damaged files and unusable folders give errors naming the path."""

import logging

import numpy as np
import pytest
import torch

from helpers import regression_data, regression_guide, regression_model
from ppl_genmodels import Posterior, compare
from ppl_genmodels.fingerprint import difference, fingerprint
from ppl_genmodels.io import DamagedFileError, OutputFolderError, StaleFileError

SVI = {"svi": {"num_steps": 20, "num_draws": 50}}


def _run(posterior, tmp_path, **kwargs):
    return compare(posterior, engines=("svi",), engine_config=SVI, progress=False,
                   checkpoint_dir=tmp_path, **kwargs)


def test_changed_data_is_not_served_from_the_old_result(tmp_path, caplog):
    data = regression_data()
    first = _run(Posterior(regression_model, regression_guide, data), tmp_path)
    shifted = Posterior(regression_model, regression_guide, {**data, "y": data["y"] + 10})
    with pytest.raises(StaleFileError, match=r"svi.nc was made from other data \(data\['y'\] "
                                             r"differs\); rerun with --force"):
        _run(shifted, tmp_path, strict_resume=True)
    with caplog.at_level(logging.WARNING):
        again = _run(shifted, tmp_path)
    assert "data['y'] differs" in caplog.text
    # new draws, not the old ones
    assert not np.array_equal(again.idata["svi"].posterior["b"].values,
                              first.idata["svi"].posterior["b"].values)
    # the same inputs are served from the file
    same = _run(shifted, tmp_path, strict_resume=True)
    np.testing.assert_array_equal(same.idata["svi"].posterior["b"].values,
                                  again.idata["svi"].posterior["b"].values)


def test_changed_model_seed_or_config_is_named(tmp_path):
    data = regression_data()
    _run(Posterior(regression_model, regression_guide, data), tmp_path)

    def other_model(x, y):
        regression_model(x, y)

    with pytest.raises(StaleFileError, match="another model"):
        _run(Posterior(other_model, regression_guide, data), tmp_path, strict_resume=True)
    with pytest.raises(StaleFileError, match="another seed"):
        _run(Posterior(regression_model, regression_guide, data), tmp_path, seed=3,
             strict_resume=True)
    with pytest.raises(StaleFileError, match="another engine config"):
        compare(Posterior(regression_model, regression_guide, data), engines=("svi",),
                engine_config={"svi": {"num_steps": 21, "num_draws": 50}}, progress=False,
                checkpoint_dir=tmp_path, strict_resume=True)


def test_fingerprint_parts():
    data = regression_data()
    post = Posterior(regression_model, regression_guide, data)
    fp = fingerprint(post, "svi", {"num_steps": 3}, 0)
    assert {"model", "guide", "data['x']", "data['y']", "theta", "engine", "seed", "version"} <= set(fp)
    assert fingerprint(post, "svi", {"num_steps": 3}, 0) == fp  # deterministic
    as_double = Posterior(regression_model, regression_guide, {**data, "y": data["y"].double()})
    assert "data['y']" in difference(fp, fingerprint(as_double, "svi", {"num_steps": 3}, 0))
    assert difference({}, fp).startswith("an older version")


def test_damaged_result_file_names_the_path(tmp_path):
    post = Posterior(regression_model, regression_guide, regression_data())
    (tmp_path / "svi.nc").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(DamagedFileError, match=r"svi.nc is damaged.*--force"):
        _run(post, tmp_path)


def test_unwritable_output_folder_is_found_before_any_engine_runs(tmp_path):
    post = Posterior(regression_model, regression_guide, regression_data())
    a_file = tmp_path / "file"
    a_file.write_text("mine")

    class Boom:
        name = "boom"

        def run(self, posterior, seed):
            raise AssertionError("an engine ran")

    with pytest.raises(OutputFolderError, match="is an existing file"):
        compare(post, engines=(Boom(),), progress=False, checkpoint_dir=a_file)
    with pytest.raises(OutputFolderError, match="cannot write into output folder"):
        compare(post, engines=(Boom(),), progress=False, checkpoint_dir=a_file / "sub")
    assert a_file.read_text() == "mine"
