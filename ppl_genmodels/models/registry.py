"""The built-in models as plain data: one :class:`ModelInfo` per model, declared once.

Importing this module imports neither torch nor Pyro: ``ppl-genmodels list`` and ``--help``
read names, descriptions and engines from here. The code of a model (its Pyro model, guide
or encoder, data loader, reference and engine budgets) lives in the module that
:attr:`ModelInfo.module` names, imported only when a posterior is built
(:func:`ppl_genmodels.models.get_model`), in the spirit of Inference Gym's ``Model``
contract (Sountsov, Radul & contributors 2020, ``inference_gym.targets.Model``).

Every model module defines ``reference(posterior) -> Reference | None`` and
``engine_config(quick) -> {engine: kwargs}``. A model with a built-in posterior defines
``make_posterior(quick, seed) -> Posterior``. A model whose theta is learned by
``ppl-genmodels train`` (``trainable``) has no built-in theta; it defines instead
``build(pixels, **kwargs) -> (generative module, encoder)``, ``local_guide(encoder, x)``
(the per-image guide family) and ``REPARAMETERIZED``. A model whose theta is learned before
its posterior is built is declared in :mod:`ppl_genmodels.learning` (``vae_digits``): it
composes a model module with the trainer, so it cannot live below the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENGINE_NAMES", "SBC_ENGINE_NAMES", "ModelInfo", "MODELS", "DEFAULT_MODELS",
           "IMAGE_MODELS", "AUTOREGRESSIVE_MODELS", "LATENT_IMAGE_MODELS", "list_models", "model_info"]

ENGINE_NAMES = ("svi", "rws", "nuts", "pyro_nuts", "cavi")
"""The built-in engines a model can run under ``ppl-genmodels compare``."""
SBC_ENGINE_NAMES = ("nuts", "svi", "rws", "amortized")
"""The engines ``ppl-genmodels sbc`` accepts (``amortized``: a guide trained once by RWS)."""


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a built-in model without importing it.

    :ivar name: the registry key (``ppl-genmodels compare NAME``).
    :ivar description: one line for ``ppl-genmodels list``.
    :ivar module: dotted path of the module that defines the model (see the module docstring).
    :ivar engines: the built-in engines that can run it: ``("svi", "nuts")`` for enumerated
        discrete sites, which reweighted wake-sleep cannot sum out.
    :ivar default: compared by ``ppl-genmodels compare`` when no model is named.
    :ivar trainable: theta is learned by ``ppl-genmodels train`` (an image model).
    :ivar latent: the model has latent sites (``False``: an autoregressive image model, exact
        log-likelihood, trained by ``mle``; nothing to compare at fixed theta).
    :ivar fixed_theta: an image model with a packaged trained theta and test images: ``compare``
        runs the fixed-theta comparison (each image its own posterior) on it.
    """

    name: str
    description: str
    module: str
    engines: tuple[str, ...] = ("svi", "rws", "nuts")
    default: bool = False
    trainable: bool = False
    fixed_theta: bool = False
    latent: bool = True


def _models(*infos: ModelInfo) -> dict[str, ModelInfo]:
    return {info.name: info for info in infos}


_M = "ppl_genmodels.models."
MODELS = _models(
    ModelInfo("eight_schools", "Rubin's eight schools, non-centred; posteriordb reference",
              _M + "eight_schools", default=True),
    ModelInfo("eight_schools_centered", "Rubin's eight schools, centred (a funnel in tau, theta); "
              "posteriordb reference", _M + "eight_schools_centered"),
    ModelInfo("normal_normal", "conjugate Gaussian mean (D=2, N=20); closed-form posterior",
              _M + "normal_normal"),
    ModelInfo("vae_mnist", "VAE (50-d latents, MLP 2x200) trained on binarized MNIST, packaged; "
              "amortized vs refit SVI/RWS vs NUTS on 100 test images at fixed theta",
              _M + "vae_mnist", engines=("amortized", "svi", "rws", "nuts"), default=True,
              fixed_theta=True),
    ModelInfo("vae_digits", "VAE (2-d latent, Bernoulli decoder) on binarized 8x8 digits; theta "
              "learned, then frozen", "ppl_genmodels.learning.vae_digits"),
    ModelInfo("vae", "VAE (Gaussian latents, Bernoulli pixels), MLP 2x200 tanh or conv; needs "
              "--checkpoint", _M + "vae_flows", trainable=True),
    ModelInfo("sbn", "sigmoid belief net (binary layers 200-200) with Bernoulli encoder; needs "
              "--checkpoint", _M + "sbn", trainable=True),
    ModelInfo("fvbn", "logistic fully visible belief net (Frey 1998), exact likelihood, no latents; "
              "needs a train run", _M + "autoregressive", engines=(), trainable=True, latent=False),
    ModelInfo("made", "MADE (Germain et al. 2015), one masked hidden layer of 500, exact likelihood, "
              "no latents; needs a train run", _M + "autoregressive", engines=(), trainable=True,
              latent=False),
    ModelInfo("pixelcnn", "small gated PixelCNN (van den Oord et al. 2016), exact likelihood, no "
              "latents; needs a train run", _M + "autoregressive", engines=(), trainable=True,
              latent=False),
    ModelInfo("gan", "GAN (DCGAN-style, 64-d Gaussian latents) as a Pyro model with a pixel-flip "
              "Bernoulli observation model; needs --checkpoint", _M + "gan", trainable=True),
    ModelInfo("kidiq", "Gelman & Hill child IQ regression (N=434, correlated beta); posteriordb "
              "reference", _M + "kidiq"),
    ModelInfo("gauss_mix", "two-component 1-D Gaussian mixture, ordered means (N=1000); "
              "posteriordb reference", _M + "gauss_mix"),
    ModelInfo("neals_funnel", "Neal's funnel, 10-D (centred; NUTS is expected to diverge); "
              "closed-form moments", _M + "neals_funnel"),
    ModelInfo("banana", "2-D banana (Haario et al. 1999; Inference Gym); closed-form moments",
              _M + "banana"),
    ModelInfo("linear_regression", "conjugate linear regression, diabetes data (N=442, D=10, "
              "correlated); closed form", _M + "linear_regression"),
    ModelInfo("logistic_regression", "logistic regression, breast cancer data (N=569, D=6 + "
              "intercept); NUTS reference", _M + "logistic_regression"),
    ModelInfo("enum_mixture", "3-component 1-D Gaussian mixture, enumerated assignments (N=150); "
              "quadrature", _M + "enum_mixture", engines=("svi", "nuts")),
    ModelInfo("bayes_gauss_mix", "conjugate Bayesian 2-component mixture (Bishop 10.2), exchangeable, "
              "enumerated assignments, low_dim_gauss_mix data; CAVI vs NUTS vs SVI",
              _M + "bayes_gauss_mix", engines=("cavi", "nuts", "svi")),
)

DEFAULT_MODELS = tuple(name for name, info in MODELS.items() if info.default)
"""What ``ppl-genmodels compare`` runs when no model is named."""
IMAGE_MODELS = tuple(name for name, info in MODELS.items() if info.trainable)
"""The models ``ppl-genmodels train`` learns theta of."""
AUTOREGRESSIVE_MODELS = tuple(name for name, info in MODELS.items() if info.trainable and not info.latent)
"""Image models without latent sites (exact log-likelihood; ``train --method mle``)."""
LATENT_IMAGE_MODELS = tuple(name for name in IMAGE_MODELS if name not in AUTOREGRESSIVE_MODELS)
"""Image models with latent sites: the ones ``compare --checkpoint`` and ``gaps`` accept."""


def list_models() -> list[str]:
    """Names of the built-in models, sorted."""
    return sorted(MODELS)


def model_info(name: str) -> ModelInfo:
    """:raises ValueError: unknown name (the message lists the known ones)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; built-in models are {list_models()}")
    return MODELS[name]
