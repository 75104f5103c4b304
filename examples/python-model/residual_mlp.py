"""A residual MLP — what a `Sequential` config cannot express: each block adds its input back
(`x + f(x)`), with layer norm, for flattened images such as the built-in digits.
"""

import lightning_mcp as L
from lightning_mcp import nn


class ResidualMLP(L.LightningModule):
    target = "my_project.models.ResidualMLP"
    summary = (
        "Residual MLP classifier: input_dim -> width, then blocks of x + Linear(ReLU(LayerNorm"
        "(x))), then num_classes; cross-entropy, AdamW(lr)."
    )
    hyperparameters = {
        "input_dim": L.hparam(64, range=(1, 65536)),
        "width": L.hparam(128, range=(1, 4096)),
        "blocks": L.hparam(2, range=(1, 16)),
        "num_classes": L.hparam(10, range=(2, 65536)),
        "dropout": L.hparam(0.0, check=L.fraction),
        "lr": L.hparam(3e-3, check=L.learning_rate),
    }

    def __init__(self, hparams):
        super().__init__(hparams)
        self.stem = nn.Linear(hparams.input_dim, hparams.width, name="stem")
        self.blocks = []
        for i in range(hparams.blocks):
            with nn.scope(f"blocks.{i}"):
                self.blocks.append((nn.LayerNorm(hparams.width), nn.Linear(hparams.width, hparams.width)))
        self.dropout = nn.Dropout(hparams.dropout)
        self.head = nn.Linear(hparams.width, hparams.num_classes, name="head")

    def forward(self, x):
        h = self.stem(x.flatten(1))
        for norm, linear in self.blocks:
            h = h + self.dropout(linear(norm(h).relu()))
        return self.head(h)

    def training_step(self, inputs, targets, batch_index):
        return self.log_classification("train", self(inputs), targets)

    def configure_optimizers(self):
        return L.AdamW(lr=self.hparams.lr)


LightningModule = L.export(ResidualMLP)
