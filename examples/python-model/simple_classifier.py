"""The seed project's SimpleClassifier, in Python: one linear layer, cross-entropy, Adam.

The same model as the Rust built-in `lightning_mcp.models.simple.SimpleClassifier`: it
declares the same parameters in the same order, so with the same seed and data it trains to
exactly the same numbers (the math runs on the host either way). It brings no data of its own:
train it on a request's data (`"data": {"dataset": "iris"}`).
"""

import lightning_mcp as L
from lightning_mcp import nn


class SimpleClassifier(L.LightningModule):
    target = "my_project.models.SimpleClassifier"
    summary = "One linear layer (input_dim -> num_classes), cross-entropy, Adam(lr)."
    hyperparameters = {
        "input_dim": L.hparam(4, range=(1, 65536)),
        "num_classes": L.hparam(3, range=(2, 65536)),
        "lr": L.hparam(1e-3, check=L.learning_rate),
    }

    def __init__(self, hparams):
        super().__init__(hparams)
        self.layer = nn.Linear(hparams.input_dim, hparams.num_classes, name="layer")

    def forward(self, x):
        return self.layer(x)

    def configure_optimizers(self):
        return L.Adam(lr=self.hparams.lr)


LightningModule = L.export(SimpleClassifier)
