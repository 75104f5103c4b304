"""`LightningModule`: a model in the shape of PyTorch Lightning's.

Only `__init__` (which declares the parameters, through `nn` layers or `parameter`) and
`forward` are required. The step defaults treat the model as a classifier: cross-entropy on
`forward`'s logits, logging `train_loss`, `val_loss`/`val_acc` and `test_loss`/`test_acc`;
override them for anything else.
"""

from enum import Enum

from wit_world.imports import log as _log

from .optim import Adam
from .tensor import Tensor, _host


class Split(Enum):
    """A data split, as `dataset` is asked for it."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"
    PREDICT = "predict"


class LightningModule:
    """Subclass it; set `target` (the `_target_` clients use), `summary` (one paragraph for
    `lightning.inspect`) and `hyperparameters` (name -> `hparam`)."""

    target = ""
    summary = ""
    hyperparameters = {}

    def __init__(self, hparams):
        """Keeps the resolved hyperparameters as `self.hparams`; a subclass declares its
        parameters after calling this."""
        self.hparams = hparams

    @classmethod
    def class_name(cls):
        """The class name reported as `model.class`."""
        return cls.__name__

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def __call__(self, x):
        return self.forward(x)

    def log(self, name, value):
        """Logs a number or a one-element tensor for this step (the epoch mean is reported)."""
        if isinstance(value, Tensor):
            _host(_log.log_tensor, name, value.raw)
        else:
            _log.log(name, float(value))

    def log_classification(self, stage, logits, labels):
        """Cross-entropy of `logits` against `labels`, logged as `{stage}_loss` with the
        accuracy as `{stage}_acc`; returns the loss."""
        loss = logits.cross_entropy(labels)
        self.log(f"{stage}_loss", loss)
        self.log(f"{stage}_acc", logits.accuracy(labels))
        return loss

    def training_step(self, inputs, targets, batch_index):
        """One training step; returns the loss to minimise. Logs `train_loss` by default."""
        loss = self(inputs).cross_entropy(targets)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, inputs, targets, batch_index):
        """Logs `val_loss` and `val_acc` by default."""
        self.log_classification("val", self(inputs), targets)

    def test_step(self, inputs, targets, batch_index):
        """Logs `test_loss` and `test_acc` by default."""
        self.log_classification("test", self(inputs), targets)

    def predict_step(self, inputs, batch_index):
        """`forward` by default."""
        return self(inputs)

    def configure_optimizers(self):
        """Adam with lr 1e-3 by default; return an optimizer, or
        `optimizer.with_scheduler(Scheduler...)`."""
        return Adam(lr=1e-3)

    def dataset(self, split, seed):
        """The model's own data for `split` (a `Split`): `(inputs, targets, batch_size)`
        with `targets` `None` for predict, or `None` when it brings none."""
        return None
