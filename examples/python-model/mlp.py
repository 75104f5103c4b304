"""The built-in MLP, in Python: input_dim -> hidden_dims (activation, dropout) -> num_classes,
with its own seeded synthetic data. It declares the Rust built-in's parameters (`layers.0`,
`layers.1`, ...) in the same order and draws the same data from the host, so with the same
seed it trains to exactly the built-in's numbers.
"""

import lightning_mcp as L
from lightning_mcp import nn

ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid")
OPTIMIZERS = {"adam": L.Adam, "adamw": L.AdamW, "sgd": L.SGD}


class MLP(L.LightningModule):
    target = "my_project.models.MLP"
    summary = (
        "Multilayer perceptron classifier: input_dim -> hidden_dims (with activation and "
        "dropout) -> num_classes, cross-entropy; optimizer adam, adamw or sgd with lr. Brings "
        "seeded synthetic data: Gaussian clusters, one per class (train 512, val 128, test "
        "128, predict 32 samples; batch size 32)."
    )
    hyperparameters = {
        "input_dim": L.hparam(8, range=(1, 65536)),
        "hidden_dims": L.hparam([64, 32], range=(1, 65536)),
        "num_classes": L.hparam(4, range=(2, 65536)),
        "activation": L.hparam("relu", choices=ACTIVATIONS),
        "dropout": L.hparam(0.0, check=L.fraction),
        "lr": L.hparam(0.01, check=L.learning_rate),
        "optimizer": L.hparam("adam", choices=tuple(OPTIMIZERS)),
    }

    def __init__(self, hparams):
        super().__init__(hparams)
        widths = [hparams.input_dim, *hparams.hidden_dims, hparams.num_classes]
        # PyTorch's names for an nn.Sequential of Linear layers: `layers.0.weight`, ...
        self.layers = [
            nn.Linear(d_in, d_out, name=f"layers.{i}")
            for i, (d_in, d_out) in enumerate(zip(widths, widths[1:]))
        ]
        self.dropout = nn.Dropout(hparams.dropout)

    def forward(self, x):
        *hidden, output = self.layers
        activation = self.hparams.activation
        for layer in hidden:
            x = self.dropout(getattr(layer(x), activation)())
        return output(x)

    def training_step(self, inputs, targets, batch_index):
        return self.log_classification("train", self(inputs), targets)

    def configure_optimizers(self):
        return OPTIMIZERS[self.hparams.optimizer](lr=self.hparams.lr)

    def dataset(self, split, seed):
        samples, offset = {
            L.Split.TRAIN: (512, 0),
            L.Split.VALIDATION: (128, 1),
            L.Split.TEST: (128, 2),
            L.Split.PREDICT: (32, 3),
        }[split]
        inputs, labels = clusters(
            samples, self.hparams.input_dim, self.hparams.num_classes, seed + offset
        )
        return inputs, (None if split == L.Split.PREDICT else labels), 32


def clusters(samples, dim, classes, seed):
    """`samples` points in `dim` dims: sample `i` has class `i % classes` and lies near that
    class's centre (±3 on the first axes, the sign pattern the binary code of `class + 1`),
    with normal noise of std 0.5 drawn on the host."""
    noise = L.randn(samples, dim, seed=seed).tolist()
    bits = classes.bit_length()
    points = []
    for k, n in enumerate(noise):
        cls, axis = (k // dim) % classes, k % dim
        centre = (3.0 if ((cls + 1) >> axis) & 1 else -3.0) if axis < bits else 0.0
        points.append(centre + 0.5 * n)
    labels = [i % classes for i in range(samples)]
    return L.tensor(points).reshape(samples, dim), L.tensor(labels)


LightningModule = L.export(MLP)
