"""Where a model's parameters get their names: as given (`name="layer"` -> `layer.weight`),
or after the layer's kind and its place (`linear_0.weight`, `linear_1.weight`), inside the
`scope`s being built (`encoder.linear_0.weight`) — as the Rust SDK names them."""

from contextlib import contextmanager

_scopes = [("", {})]


@contextmanager
def scope(name):
    """Parameters declared inside are named after `name.` (nested scopes add theirs)."""
    path = _scopes[-1][0] + name + "."
    _scopes.append((path, {}))
    try:
        yield
    finally:
        _scopes.pop()


def qualified(name):
    """`name` inside the scope being built."""
    return _scopes[-1][0] + name


def next_name(kind):
    """The name of a layer of `kind` whose author gave none: `{kind}_{n}` in its scope."""
    counts = _scopes[-1][1]
    count = counts.get(kind, 0)
    counts[kind] = count + 1
    return f"{kind}_{count}"


def reset():
    """Starts naming afresh, at the root: a model declares its parameters once."""
    del _scopes[1:]
    _scopes[0][1].clear()
