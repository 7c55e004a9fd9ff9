"""The Python entry points, with the pieces wired together the way the CLI wires them."""
from __future__ import annotations


def evaluate(model, suite="robustness", out=None, **kwargs):
    """Score a model on a suite: `nsbench.bench.api.evaluate` with the training package's reference trainer passed
    in, so built -A sets can train their reference classifiers. Returns the result rows (a DataFrame).

    >>> evaluate("runs/fmnist/iter3.pt", "robustness", "out/")                      # doctest: +SKIP
    >>> evaluate(my_module, "quick", "out/", classes=10, input_size=32)             # doctest: +SKIP
    """
    from .bench.api import evaluate as _evaluate
    from .training.reference import train_reference

    kwargs.setdefault("reference_trainer", train_reference)
    return _evaluate(model, suite, out, **kwargs)
