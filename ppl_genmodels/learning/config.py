"""What a training run is: its configuration (:class:`TrainConfig`, checked before any
data is read) and the image model it builds (:func:`image_model`, :func:`build_model`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._validate import check_fraction, check_int, check_positive, check_seed
from ..models.registry import IMAGE_MODELS
from .methods import DEFAULT_LR, DEFAULT_PARTICLES, METHODS

__all__ = ["TrainConfig", "image_model", "build_model"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and ``config.json``)."""

    model: str = "vae"
    data: str = "binarized_mnist"
    data_dir: str | None = None
    method: str | None = None
    epochs: int = 10
    batch_size: int = 100
    num_particles: int | None = None
    lr: float | None = None
    seed: int = 0
    num_train: int | None = None
    insomnia: float = 1.0
    model_kwargs: dict = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        """Fill defaults and check combinations. :raises ValueError: naming the bad option."""
        if self.model not in IMAGE_MODELS:
            raise ValueError(f"unknown image model {self.model!r}; known: {list(IMAGE_MODELS)}")
        if self.method is None:  # the model's own method: gan, mle without latents, else svi
            has_latents = getattr(image_model(self.model), "LATENT", True)
            self.method = "gan" if self.model == "gan" else ("svi" if has_latents else "mle")
        if self.lr is None:
            self.lr = DEFAULT_LR.get(self.method, 1e-3)
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {list(METHODS)}")
        if (self.model == "gan") != (self.method == "gan"):
            raise ValueError(f"method 'gan' trains the gan model and only it; got model "
                             f"{self.model!r} with method {self.method!r}")
        check_kwargs = getattr(image_model(self.model), "check_kwargs", None)
        if check_kwargs is not None:  # the model's options, before any data is read
            check_kwargs(self.model_kwargs)
        if self.num_particles is None:
            self.num_particles = DEFAULT_PARTICLES[self.method]
        if self.method == "rws" and self.num_particles < 2:
            raise ValueError("rws needs num_particles >= 2 (K = 1 is wake_sleep)")
        if self.method == "wake_sleep" and self.num_particles != 1:
            raise ValueError("wake_sleep uses one guide sample (num_particles=1); use rws for K > 1")
        latent = getattr(image_model(self.model), "LATENT", True)
        if (self.method == "mle") == latent:
            raise ValueError(f"{self.model} has {'latent' if latent else 'no latent'} sites: "
                             + ("train it by svi, iwae, rws, wake_sleep or nvil (mle is for "
                                "fvbn, made, pixelcnn)" if latent else "train it by mle"))
        if self.method == "iwae" and not image_model(self.model).REPARAMETERIZED:
            raise ValueError(f"iwae needs reparameterized latents; {self.model}'s are discrete: "
                             "use rws or nvil")
        for name in ("epochs", "batch_size", "num_particles"):
            check_int(name, getattr(self, name), 1)
        check_positive("lr", self.lr)
        check_fraction("insomnia", self.insomnia, closed=True)
        check_seed(self.seed)
        if self.num_train is not None:
            check_int("num_train", self.num_train, 1)
        return self


def image_model(name: str):
    """The module of the built-in image model ``name``: its ``build(pixels, **kwargs)`` gives
    ``(generative module, encoder)`` and ``local_guide(encoder, x)`` the per-image guide.

    :raises ValueError: ``name`` is not a trainable image model.
    """
    from ..models import get_model

    if name not in IMAGE_MODELS:
        raise ValueError(f"unknown image model {name!r}; known: {list(IMAGE_MODELS)}")
    return get_model(name).module


def build_model(config: TrainConfig, pixels: int):
    """``(generative module, encoder)`` for ``config.model`` on ``pixels``-pixel images.

    NVIL on latents that are not reparameterized (``sbn``) gets the encoder's neural
    baselines, which reduce the variance of its score-function gradients.

    :raises ValueError: from the model's ``build`` (bad sizes or architecture).
    """
    module = image_model(config.model)
    kwargs = dict(config.model_kwargs)
    if not getattr(module, "LATENT", True):  # one module builds fvbn, made and pixelcnn
        kwargs["kind"] = config.model
    if config.method == "nvil" and not module.REPARAMETERIZED:
        kwargs["baselines"] = True
    return module.build(pixels, **kwargs)
