"""Placing a posterior on a device: CPU round trip here; CUDA only where one is present."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from ppl_genmodels import Posterior
from ppl_genmodels.infer import NUTS


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 3)

    def forward(self, z):
        return self.linear(z)


def _posterior(dtype=torch.float32):
    torch.manual_seed(0)
    decoder = _Decoder().to(dtype)

    def model(x):
        z = pyro.sample("z", dist.Normal(torch.zeros(2, dtype=x.dtype), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(decoder(z), 1.0).to_event(1), obs=x)

    return Posterior(model, None, {"x": torch.tensor([0.5, -0.2, 1.0], dtype=dtype)},
                     params=decoder)


def test_to_cpu_keeps_the_posterior_and_its_draws():
    posterior = _posterior()
    moved = posterior.to("cpu")
    assert moved is not posterior and moved.model is posterior.model
    assert all(torch.equal(moved.data[k], posterior.data[k]) for k in posterior.data)
    nuts = NUTS(num_samples=20, warmup_steps=20, num_chains=2)
    a = nuts.run(posterior, seed=3, progress=False).idata.posterior["z"].values
    b = nuts.run(moved, seed=3, progress=False).idata.posterior["z"].values
    assert (a == b).all()


@pytest.mark.parametrize("device,message", [("nonsense", "not a torch device"),
                                            (3.5, "not a torch device")])
def test_unknown_device_is_named(device, message):
    with pytest.raises(ValueError, match=message):
        _posterior().to(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_refused_before_any_work():
    with pytest.raises(ValueError, match="no CUDA device"):
        _posterior().to("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nuts_on_cuda_gives_the_cpu_draws():
    # Random numbers come from a CPU generator on every device, so the draws agree up to
    # rounding; in float64 rounding cannot flip a U-turn or acceptance decision in 40
    # iterations (in float32 it can, and one flipped decision sends the chains apart).
    nuts = NUTS(num_samples=20, warmup_steps=20, num_chains=2, compile="none")
    a = nuts.run(_posterior(torch.float64), seed=3, progress=False).idata.posterior["z"].values
    with torch.device("cuda"):
        b = nuts.run(_posterior(torch.float64).to("cuda"), seed=3,
                      progress=False).idata.posterior["z"].values
    assert abs(a - b).max() < 1e-8, abs(a - b).max(axis=-1)


@pytest.mark.parametrize("device", ["nonsense", "tpu"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_cli_refuses_an_unusable_device_before_any_work(device, tmp_path, capsys):
    from ppl_genmodels.cli import main

    out = tmp_path / "out"
    assert main(["compare", "normal_normal", "--quick", "--device", device, "--out", str(out)]) == 2
    assert f"--device {device}" in capsys.readouterr().err
    assert not out.exists()
