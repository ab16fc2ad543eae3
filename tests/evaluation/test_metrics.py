"""The old import path artefix.evaluation.metrics re-exports the numpy metrics of artefix.metrics."""

from __future__ import annotations

import artefix.metrics
from artefix.evaluation import metrics
from artefix.metrics import numpy_metrics, torch_metrics


def test_old_path_re_exports_every_name_of_the_numpy_metrics() -> None:
    names = [n for n in dir(numpy_metrics) if not n.startswith("__")]
    assert "_pair" in names and "vifp" in names
    for name in names:
        assert getattr(metrics, name) is getattr(numpy_metrics, name), name
    assert metrics.__all__ == numpy_metrics.__all__


def test_package_re_exports_both_versions() -> None:
    for name in artefix.metrics.__all__:
        module = torch_metrics if name in torch_metrics.__all__ else numpy_metrics
        assert getattr(artefix.metrics, name) is getattr(module, name), name
    assert set(artefix.metrics.__all__) == {*numpy_metrics.__all__, *torch_metrics.__all__}


def test_metrics_package_does_not_import_evaluation_or_losses() -> None:
    for module in (artefix.metrics, numpy_metrics, torch_metrics):
        source = open(module.__file__, encoding="utf-8").read()
        assert "from artefix.evaluation" not in source and "import artefix.evaluation" not in source
        assert "from artefix.losses" not in source and "import artefix.losses" not in source
