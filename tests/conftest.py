import pyro
import pytest
import torch

# One thread: on a loaded 2-core box two torch threads are many times slower for these
# small models.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_param_store():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
