"""The implicitly trained bias CNN (``bfc``): the torch port, its packaged weights and the baseline function.

The checks against the authors' files (``IN.h5``, ``data.npz``) read ``../shared/baselines/bfc`` and skip
where it is absent (fail where ``ARTEFIX_REQUIRE_SHARED_DATA=1``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import scipy.fftpack
import tomllib
import torch
from safetensors import safe_open

from artefix.evaluation.baselines import BASELINES, available, bfc, bfc_field
from artefix.evaluation.baselines import bias_cnn as bc
from artefix.evaluation.methods import MethodSpec
from artefix.evaluation.metrics import foreground_mask
from artefix.evaluation.protocol import plan_methods

REPO = Path(__file__).parents[2]
SHARED_BFC = REPO / ".." / "shared" / "baselines" / "bfc"
PACKAGED = REPO / "src" / "artefix" / "weights" / "bfc"


@pytest.fixture(scope="module")
def source(require_shared) -> Path:
    """The authors' files: ``IN.h5``, ``data.npz``, ``LICENSE``."""
    return require_shared(SHARED_BFC, "the authors' bias CNN files (IN.h5, data.npz)")


@pytest.fixture(scope="module")
def example(source) -> dict[str, np.ndarray]:
    with np.load(source / "data.npz") as npz:
        return {k: npz[k] for k in ("v", "g", "g_hat")}


def _convert_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convert_bfc", REPO / "scripts" / "convert_bfc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log_corr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.corrcoef(np.log(a[mask]), np.log(b[mask]))[0, 1])


# ----------------------------------------------------------------------------------- the network port


def test_dct_field_is_tensorflows_idct():
    """``tf.signal.idct(x, n=256)`` (type 2, norm None) is scipy.fftpack's unnormalised DCT-III, zero-padded."""
    c = np.random.default_rng(0).normal(size=(2, 1, 4, 4))
    want = scipy.fftpack.idct(scipy.fftpack.idct(c, n=256, axis=-2), n=256, axis=-1)
    np.testing.assert_allclose(bc.dct_field(torch.from_numpy(c)).numpy(), want, rtol=0, atol=1e-12)
    assert bc.dct_basis(8, 3)[:, 0].eq(1).all()  # the DC term is not doubled


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [(256, 3, 2, (0, 1)), (255, 3, 2, (1, 1)), (256, 3, 1, (1, 1)), (4, 1, 1, (0, 0)), (5, 3, 2, (1, 1))],
)
def test_same_padding_is_tensorflows(size, kernel, stride, pads):
    assert bc._same_padding(size, kernel, stride) == pads
    conv = bc._SameConv2d(1, 1, kernel, stride)
    assert conv(torch.zeros(1, 1, size, size)).shape[-1] == -(-size // stride)


def test_network_shapes_and_range():
    net = bc.load_bfc_net()
    assert net is bc.load_bfc_net()  # loaded once
    x = torch.rand(2, 1, 256, 256)
    with torch.no_grad():
        assert net.coefficients(x).shape == (2, 1, 4, 4)
        field = net(x)
    assert field.shape == (2, 1, 256, 256) and field.dtype == torch.float32
    assert field.min() >= 0.5 and field.max() <= 2.0
    assert set(bc.KERAS_LAYERS) == {k.rsplit(".", 1)[0] for k in net.state_dict()}


# ------------------------------------------------------------------------------------ the baseline


@pytest.mark.parametrize("shape", [(97, 131), (256, 256), (320, 320), (2, 3)])
def test_bfc_any_2d_shape(shape):
    x = np.random.default_rng(1).random(shape) * 500
    out = bfc(x)
    field = bfc_field(x / x.max())
    assert out.shape == shape and out.dtype == np.float64 and np.isfinite(out).all()
    assert field.shape == shape and field.min() >= 0.5 and field.max() <= 2.0


def test_bfc_constant_images_and_bad_inputs():
    for value in (0.0, 3.0):
        flat = np.full((40, 50), value)
        np.testing.assert_array_equal(bfc(flat), flat)
        assert np.isfinite(bfc_field(flat)).all()
    with pytest.raises(ValueError, match="2D"):
        bfc(np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="real"):
        bfc(np.ones((8, 8), complex))
    with pytest.raises(ValueError, match="NaN"):
        bfc(np.full((8, 8), np.nan))


def test_bfc_is_deterministic_and_affine_equivariant():
    x = np.random.default_rng(2).random((64, 72)).astype(np.float32)
    out = bfc(x)
    np.testing.assert_array_equal(bfc(x), out)
    np.testing.assert_allclose(bfc(2 * x.astype(np.float64) + 5), 2 * out + 5, rtol=1e-5, atol=1e-5)
    # the correction divides the [0, 1]-scaled slice by the field: v / F(v)
    scaled = (x - x.min()) / (x.max() - x.min())
    np.testing.assert_allclose(bfc(scaled), scaled / bfc_field(scaled), rtol=1e-12)


def test_bfc_is_a_bias_baseline_like_n4():
    base = BASELINES["bfc"]
    assert base.func is bfc and (base.experiment, base.needs) == ("bias", "corrupted")
    assert base.extra is None and base.module is None and base.tune is None  # torch and safetensors: core
    assert available("bfc")
    plan, _ = plan_methods(["bias", "noise+bias"], [], ["n4", "bfc"])
    assert [m.name for m in plan["bias"]][1:] == [n for n in ("n4", "bfc") if available(n)]
    assert plan["bias"][-1] == MethodSpec("bfc", "baseline", ("bfc",))
    assert [m.name for m in plan["noise+bias"]] == ["input"]  # no baseline runs in a scenario, n4 neither


def test_weights_are_package_data_with_the_licence():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "weights/bfc/*" in package_data["artefix"]
    assert sorted(p.name for p in PACKAGED.iterdir()) == ["LICENSE", "README.md", "bfc.safetensors"]
    licence = (PACKAGED / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "Attila Simkó" in licence
    assert "966afc0" in (PACKAGED / "README.md").read_text(encoding="utf-8")
    assert (PACKAGED / "bfc.safetensors").stat().st_size < 1_400_000
    with safe_open(PACKAGED / "bfc.safetensors", "np") as f:
        assert f.metadata()["commit"] == "966afc0" and f.metadata()["license"].startswith("MIT")


# ------------------------------------------------------------------------- against the authors' files


def test_packaged_weights_are_a_fresh_conversion(source, tmp_path):
    script = _convert_script()
    fresh = script.convert(source / "IN.h5")
    with safe_open(PACKAGED / "bfc.safetensors", "np") as f:
        assert sorted(f.keys()) == sorted(fresh)
        for key, value in fresh.items():
            np.testing.assert_array_equal(f.get_tensor(key), value, err_msg=key)
        assert f.metadata() == script.metadata(source / "IN.h5")
    assert (PACKAGED / "LICENSE").read_bytes() == (source / "LICENSE").read_bytes()
    script.main(["--source", str(source), "--out", str(tmp_path)])
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == (PACKAGED / "README.md").read_text(encoding="utf-8")


def test_the_graph_check_rejects_another_network(source):
    import h5py

    script = _convert_script()
    with h5py.File(source / "IN.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
    script.check_graph(config)
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] == "conv2d_4":
            layer["config"]["strides"] = [2, 2]
    with pytest.raises(ValueError, match="conv2d_4"):
        script.check_graph(config)


def test_port_reproduces_the_batch_norm_statistics(example):
    """On the authors' example, each batch normalisation sees the mean and variance it stored in training.

    Measured: the median over channels of |log(variance / moving variance)| is at most 0.14 per layer; a
    wrong padding (pad before instead of after) or flipped kernels give 1.2 to 7.2.
    """
    net = bc.load_bfc_net()
    seen: dict[str, torch.Tensor] = {}
    norms = {name: m for name, m in net.named_modules() if isinstance(m, bc._KerasBatchNorm)}
    hooks = [m.register_forward_hook(lambda _m, i, _o, n=n: seen.__setitem__(n, i[0][0])) for n, m in norms.items()]
    try:
        with torch.no_grad():
            net(torch.from_numpy(example["v"]).float()[None, None])
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) == 7
    for name, bn in norms.items():
        act = seen[name].double()
        log_var = (act.var((1, 2), unbiased=False) / bn.moving_variance.double()).log().abs().median()
        z_mean = ((act.mean((1, 2)) - bn.moving_mean) / bn.moving_variance.double().sqrt()).abs().median()
        assert log_var < 0.3, name
        assert z_mean < 1.0, name


def test_port_predicts_the_examples_field(example):
    """F(v) against the true field g, up to a constant factor, inside the head.

    Measured: log-field correlation 0.8745 (F(v) / g varies by 4.5 % around its mean); the weak
    dependence on the input (the field of an all-zero slice: 0.867) is the published model's.
    """
    v, g, g_hat = example["v"], example["g"], example["g_hat"]
    head = foreground_mask(v)
    field = bfc_field(v)
    assert _log_corr(field, g, head) > 0.85
    ratio = (field / g)[head]
    assert ratio.std() / ratio.mean() < 0.06
    # the correction brings v closer to the unbiased u = v / g
    u = v / g
    assert np.corrcoef((v / field)[head], u[head])[0, 1] > np.corrcoef(v[head], u[head])[0, 1]
    # the authors' demonstration: F(v g_hat) / F(v) has g_hat's shape (log correlation 0.79), though
    # only about 1 % of its amplitude
    vb = v * g_hat
    recovered = bfc_field(vb / vb.max()) / field
    assert _log_corr(recovered, g_hat, head) > 0.75
