"""Training (``artefix train``) and hyper-parameter search (``artefix tune``) with PyTorch Lightning and Optuna.

The configuration modules import neither torch nor Lightning at import time of this package; the engine
does, when :func:`artefix.training.engine.fit` runs.

>>> from artefix.training.config import load_config  # doctest: +SKIP
>>> from artefix.training.engine import fit  # doctest: +SKIP
>>> result = fit(load_config("configs/tiny.yaml"), "runs/tiny")  # doctest: +SKIP
"""
