"""Write lightning-mcp models in Python, the way a PyTorch Lightning `LightningModule` reads.

A model is a WebAssembly component built by componentize-py from a Python module; it runs
sandboxed in the lightning-mcp server, and every tensor op runs on the host (Burn, with
autodiff). The module defines a `LightningModule` subclass and exports it::

    import lightning_mcp as L
    from lightning_mcp import nn

    class Tiny(L.LightningModule):
        target = "my_project.models.Tiny"
        summary = "One linear layer."
        hyperparameters = {
            "input_dim": L.hparam(4, range=(1, 65536)),
            "num_classes": L.hparam(3, range=(2, 65536)),
            "lr": L.hparam(0.01, check=L.learning_rate),
        }

        def __init__(self, hparams):
            super().__init__(hparams)
            self.layer = nn.Linear(hparams.input_dim, hparams.num_classes, name="layer")

        def forward(self, x):
            return self.layer(x)

        def configure_optimizers(self):
            return L.Adam(lr=self.hparams.lr)

    LightningModule = L.export(Tiny)

Build it with `componentize-py -d wit -w model componentize -p guest-sdk-python -p . tiny
-o tiny.wasm` (see `examples/python-model/README.md`).
"""

from .tensor import Tensor, TensorError, cat, causal_mask, ones, randn, tensor, uniform, zeros
from .hparams import Hyperparameters, fraction, hparam, learning_rate, non_negative
from .module import LightningModule, Split
from .optim import SGD, Adam, AdamW, Optimization, Scheduler
from .export import export
from . import nn

__all__ = [
    "Adam",
    "AdamW",
    "Hyperparameters",
    "LightningModule",
    "Optimization",
    "SGD",
    "Scheduler",
    "Split",
    "Tensor",
    "TensorError",
    "cat",
    "causal_mask",
    "export",
    "fraction",
    "hparam",
    "learning_rate",
    "nn",
    "non_negative",
    "ones",
    "randn",
    "tensor",
    "uniform",
    "zeros",
]
