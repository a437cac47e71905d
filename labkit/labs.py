"""The models the labs train, by run name, with the notebooks' own settings.

The notebooks spell their configs out cell by cell, because the settings are what
students read; this module builds the same :class:`~labkit.train.TrainConfig` objects
for scripts that need them outside a notebook (``benchmarks/quality.py``). A test
runs the notebooks and checks that each config here names a run folder they wrote,
so the two cannot drift apart silently.

Each function takes the notebook's parameters (same names, same defaults) and
returns ``{run name: config}``; ``train.fit_or_load(config, runs_root, name=...)``
then trains the run or reloads the one a notebook left in the same ``runs_root``.
"""

from __future__ import annotations

import inspect

from .compare import DEFAULT_NAME
from .train import TrainConfig

WGAN_BATCH = 64  # the WGAN papers' batch size


def lab1(epochs: int = 5, n_train: int | None = None, batch_size: int = 128, nz: int = 100, ngf: int = 32,
         ndf: int = 32, lr: float = 2e-4, beta1: float = 0.5, seed: int = 0, device: str = "auto") -> dict[str, TrainConfig]:
    """Notebook 01's default DCGAN (``dcgan-default``)."""
    return {DEFAULT_NAME: TrainConfig(epochs=epochs, n_train=n_train, batch_size=batch_size, nz=nz, ngf=ngf, ndf=ndf,
                                      lr=lr, beta1=beta1, seed=seed, device=device)}


def lab1_conditional(epochs: int = 5, n_train: int | None = None, batch_size: int = 128, nz: int = 100,
                     ngf: int = 32, ndf: int = 32, lr: float = 2e-4, beta1: float = 0.5, seed: int = 0,
                     device: str = "auto") -> dict[str, TrainConfig]:
    """Notebook 02's conditional DCGAN (``cgan-default``) and its D that ignores the label (``cgan-d-without-y``)."""
    cgan = TrainConfig(conditional=True, epochs=epochs, n_train=n_train, batch_size=batch_size, nz=nz, ngf=ngf,
                       ndf=ndf, lr=lr, beta1=beta1, seed=seed, device=device)
    return {"cgan-default": cgan, "cgan-d-without-y": cgan.replace(d_uses_labels=False)}


def lab2(epochs: int = 30, n_train: int | None = None, batch_size: int = 128, lr: float = 2e-4, seed: int = 0,
         device: str = "auto", n_critic: int = 5, clip: float = 0.01, gp_lambda: float = 10.0) -> dict[str, TrainConfig]:
    """Notebook 03's four models: the vanilla MLP GAN (default and tuned), WGAN and WGAN-GP."""
    mlp = dict(model="mlp", critic_norm="none", n_train=n_train, epochs=epochs, seed=seed, device=device, n_samples=100)
    gan_default = TrainConfig(loss="gan", batch_size=batch_size, lr=lr, beta1=0.5, **mlp)
    available = n_train if n_train is not None else 60_000
    conv = dict(model="dcgan", critic_norm="layer", n_train=n_train, epochs=epochs, seed=seed, device=device,
                n_samples=100, n_critic=n_critic, batch_size=min(WGAN_BATCH, available // n_critic))
    return {
        "gan-default": gan_default,
        "gan-tuned": gan_default.replace(g_norm="batch"),
        "wgan": TrainConfig(loss="wgan", optimizer="rmsprop", lr=5e-5, clip=clip, **conv),
        "wgan-gp": TrainConfig(loss="wgan-gp", lr=2e-4, beta1=0.5, beta2=0.9, gp_lambda=gp_lambda, **conv),
    }


LABS = {"01_dcgan": lab1, "02_cgan": lab1_conditional, "03_wgan_metrics": lab2}


def configs(notebook: str, **parameters) -> dict[str, TrainConfig]:
    """The runs of one notebook (``01_dcgan``, ``02_cgan`` or ``03_wgan_metrics``) for its parameters.

    Parameters the notebook declares but that do not define these runs (``run_dir``,
    ``n_eval``, ...) are ignored, so a papermill parameter dict can be passed as is.
    """
    if notebook not in LABS:
        raise ValueError(f"notebook must be one of {tuple(LABS)}, got {notebook!r}")
    build = LABS[notebook]
    accepted = inspect.signature(build).parameters
    return build(**{k: v for k, v in parameters.items() if k in accepted})
