"""`export`: the model class as the component's `lightning-module` export. A Python
exception in a hook becomes the hook's error, bounded (the host bounds it again)."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import lightning_module as _lm

from . import hparams as _hparams
from .module import Split
from .naming import reset as _reset_names
from .optim import Optimization
from .tensor import Tensor

# Longest error message a hook returns.
_MAX_ERROR = 4096

_SPLITS = {
    _lm.Split.TRAIN: Split.TRAIN,
    _lm.Split.VALIDATION: Split.VALIDATION,
    _lm.Split.TEST: Split.TEST,
    _lm.Split.PREDICT: Split.PREDICT,
}


def _error(exception):
    """An exception as a hook's error: its message, at most `_MAX_ERROR` characters."""
    message = str(exception) or type(exception).__name__
    if len(message) > _MAX_ERROR:
        message = message[:_MAX_ERROR] + f" … (cut: {len(message)} characters in all)"
    return Err(message)


def _guarded(hook):
    """`hook`, its exceptions raised as the hook's error."""

    def run(*args):
        try:
            return hook(*args)
        except Exception as exception:  # every failure is the hook's error, never a trap
            raise _error(exception) from None

    return run


def export(model):
    """The `lightning-module` export of `model`, a `LightningModule` subclass. Assign it to
    the module-level name `LightningModule` (componentize-py looks for that name)."""
    state = {}

    def instance():
        if "model" not in state:
            raise RuntimeError("the model is not built: init has not run")
        return state["model"]

    def build(hyperparameters):
        given = json.loads(hyperparameters)
        if not isinstance(given, dict):
            raise ValueError("the hyperparameters must be a JSON object")
        resolved = _hparams.resolve(model.hyperparameters, given)
        _reset_names()
        state["model"] = model(resolved)
        return json.dumps(resolved.as_dict())

    def train_step(inputs, targets, batch_index):
        loss = instance().training_step(Tensor(inputs), Tensor(targets), batch_index)
        return loss.raw

    def own_data(split, seed):
        data = instance().dataset(_SPLITS[split], seed)
        if data is None:
            return None
        inputs, targets, batch_size = data
        raw_targets = targets.raw if targets is not None else None
        return _lm.ModelData(inputs.raw, raw_targets, batch_size)

    def optimization():
        chosen = instance().configure_optimizers()
        if not isinstance(chosen, Optimization):
            chosen = Optimization(chosen)
        return chosen.to_wit()

    class Export(exports.LightningModule):
        def describe(self):
            defaults = json.dumps(_hparams.defaults(model.hyperparameters))
            return _lm.Description(model.target, model.class_name(), model.summary, defaults)

        init = staticmethod(_guarded(build))
        forward = staticmethod(_guarded(lambda inputs: instance()(Tensor(inputs)).raw))
        training_step = staticmethod(_guarded(train_step))
        validation_step = staticmethod(
            _guarded(lambda x, y, i: instance().validation_step(Tensor(x), Tensor(y), i))
        )
        test_step = staticmethod(
            _guarded(lambda x, y, i: instance().test_step(Tensor(x), Tensor(y), i))
        )
        predict_step = staticmethod(
            _guarded(lambda x, i: instance().predict_step(Tensor(x), i).raw)
        )
        configure_optimizers = staticmethod(optimization)
        dataset = staticmethod(_guarded(own_data))

    Export.__name__ = "LightningModule"
    return Export
