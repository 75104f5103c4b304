"""Hyperparameters declared once: each with its default and its checks, every error naming
the field (`input_dim must be between 1 and 65536, got 0`), unknown fields refused."""

_MISSING = object()


class HyperparameterError(ValueError):
    """A hyperparameter the model does not take, or one out of its bounds."""


class hparam:
    """One hyperparameter: its `default` (whose type a request's value must have: an int, a
    float — an int is taken too —, a bool, a str, a list of them, or `None`), an inclusive
    `range=(low, high)` (for a list, of each element), `choices`, and a `check(name, value)`
    that raises with a message naming the field."""

    def __init__(self, default, *, range=None, choices=None, check=None):
        self.default = default
        self.range = range
        self.choices = choices
        self.check = check

    def resolve(self, name, value=_MISSING):
        """The field's value: the request's `value`, checked, or the default."""
        if value is _MISSING:
            value = self.default
        value = _typed(name, value, self.default)
        for index, element in _elements(name, value):
            self._check_one(index, element)
        if self.check is not None:
            self.check(name, value)
        return value

    def _check_one(self, name, value):
        if self.range is not None and value is not None:
            low, high = self.range
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HyperparameterError(f"{name} must be a number, got {value!r}")
            if not low <= value <= high:
                raise HyperparameterError(f"{name} must be between {low} and {high}, got {value}")
        if self.choices is not None and value not in self.choices:
            options = ", ".join(repr(c) for c in self.choices)
            raise HyperparameterError(f"{name} must be one of {options}, got {value!r}")


def _typed(name, value, default):
    """`value`, when it has the default's type (an int stands for a float)."""
    if default is None or value is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, list):
        return value
    if type(value) is not expected:
        kind = _KINDS.get(expected, expected.__name__)
        raise HyperparameterError(f"{name} must be {kind}, got {value!r}")
    return value


# How an error names the type a field takes.
_KINDS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
}


def _elements(name, value):
    """`(name, value)` of each element of a list, else of the value itself."""
    if isinstance(value, list):
        return [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return [(name, value)]


class Hyperparameters:
    """The resolved hyperparameters, as attributes (`hparams.lr`) and as a dict
    (`hparams.as_dict()`, what the server reports)."""

    def __init__(self, values):
        self._values = dict(values)

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self):
        return dict(self._values)


def resolve(declared, given):
    """`given` (a request's `model` object without `_target_`) against `declared` (name ->
    `hparam`): every declared field, its value or default, checked."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise HyperparameterError(
            f"unknown hyperparameter {unknown[0]!r}; this model takes: {known}"
        )
    return Hyperparameters(
        {name: spec.resolve(name, given.get(name, _MISSING)) for name, spec in declared.items()}
    )


def defaults(declared):
    """The declared defaults, as the model's description reports them."""
    return {name: spec.default for name, spec in declared.items()}


def fraction(name, value):
    """Raises unless `value` is in `[0, 1)` (a dropout probability)."""
    if not 0.0 <= value < 1.0:
        raise HyperparameterError(f"{name} must be in [0, 1), got {value}")


def learning_rate(name, value):
    """Raises unless `value` is a learning rate in `(0, 10]`."""
    if not 0.0 < value <= 10.0:
        raise HyperparameterError(f"{name} must be in (0, 10], got {value}")


def non_negative(name, value):
    """Raises unless `value` is a finite number `>= 0` (a weight decay)."""
    if not 0.0 <= value < float("inf"):
        raise HyperparameterError(f"{name} must be a finite number >= 0, got {value}")
