"""A linear classifier written in Python against the raw `lightning:model` bindings, for the
tests: built into a component by componentize-py, it imports the WASI clocks, randomness,
filesystem and sockets that CPython links, which the sandbox grants without authority."""

import json
import random

from wit_world import exports
from wit_world.exports import lightning_module as lm
from wit_world.imports import log, params

DEFAULTS = {"input_dim": 4, "num_classes": 3, "lr": 0.01}

_model = {}


class LightningModule(exports.LightningModule):
    def describe(self):
        return lm.Description(
            "lightning_mcp.testing.PythonLinear",
            "PythonLinear",
            "Test model: a linear classifier written in Python.",
            json.dumps(DEFAULTS),
        )

    def init(self, hyperparameters):
        h = dict(DEFAULTS, **json.loads(hyperparameters))
        _model["h"] = h
        shape = [h["num_classes"], h["input_dim"]]
        _model["weight"] = params.parameter("layer.weight", shape, params.Init_KaimingUniform())
        _model["bias"] = params.parameter("layer.bias", [h["num_classes"]], params.Init_Zeros())
        # CPython's own randomness is the run's: seeded by the host, so the same seed gives
        # the same draw.
        _model["draw"] = random.random()
        print("PythonLinear ready")
        return json.dumps(h)

    def forward(self, inputs):
        return inputs.matmul(_model["weight"].transpose(0, 1)).add(_model["bias"])

    def training_step(self, inputs, targets, batch_index):
        loss = self.forward(inputs).cross_entropy(targets)
        log.log_tensor("train_loss", loss)
        log.log("draw", _model["draw"])
        return loss

    def validation_step(self, inputs, targets, batch_index):
        log.log_tensor("val_loss", self.forward(inputs).cross_entropy(targets))

    def test_step(self, inputs, targets, batch_index):
        log.log_tensor("test_loss", self.forward(inputs).cross_entropy(targets))

    def predict_step(self, inputs, batch_index):
        return self.forward(inputs)

    def configure_optimizers(self):
        adam = lm.AdamConfig(_model["h"]["lr"], 0.9, 0.999, 1e-8, 0.0)
        return lm.Optimization(lm.Optimizer_Adam(adam), None)

    def dataset(self, split, seed):
        return None
