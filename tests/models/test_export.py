import pytest
import torch

from artefix.artefacts.base import znorm
from artefix.models import build_model
from artefix.models.export import export_onnx, export_torchscript


def _x(shape, seed=0):
    return znorm(torch.randn(shape, generator=torch.Generator().manual_seed(seed)))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(("preset", "shape"), [("tiny", (2, 1, 37, 50)), ("compact", (1, 1, 48, 40))])
def test_torchscript_matches_eager(tmp_path, preset, shape):
    model = build_model(preset, seed=0)
    path = export_torchscript(model, tmp_path / "model.pt", example_shape=shape)
    assert model.training  # training flag restored
    loaded = torch.jit.load(str(path))
    x = _x((3, *shape[1:]))  # another batch size than the example
    model.eval()
    with torch.no_grad():
        eager = model(x)
        output, residuals = loaded(x)
    torch.testing.assert_close(output, eager.output, atol=1e-4, rtol=0)
    torch.testing.assert_close(residuals, eager.residuals, atol=1e-4, rtol=0)


def test_onnx_matches_eager(tmp_path):
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model = build_model("tiny", seed=0)
    path = export_onnx(model, tmp_path / "model.onnx", example_shape=(1, 1, 37, 50))  # traced with 2 inside
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    x = _x((3, 1, 37, 50))  # dynamic batch axis
    output, residuals = session.run(["output", "residuals"], {"image": x.numpy()})
    with torch.no_grad():
        eager = model.eval()(x)
    torch.testing.assert_close(torch.from_numpy(output), eager.output, atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.from_numpy(residuals), eager.residuals, atol=1e-4, rtol=0)


def test_export_rejects_bad_example_shape(tmp_path):
    with pytest.raises(ValueError, match="example_shape"):
        export_torchscript(build_model("tiny"), tmp_path / "m.pt", example_shape=(1, 2, 8, 8))


SMALL = {"depth": 1, "convs_per_block": 1}
"""The tiny preset with one strided level and one convolution a block: the steps exported around the network
are what the tests below check (the presets' own exports are checked above), and an ONNX export's time grows
with its graph (2 cores: 8 s of CPU for tiny with gates, 5 s for this; 55 s and 30 s with a self-ensemble of 8)."""


class _Exports:
    """The TorchScript and ONNX exports of ``model`` for ``(B, 1, H, W)`` = ``shape``, each made once on first use."""

    def __init__(self, model, shape, folder):
        self.model, self.shape, self.folder = model, tuple(shape), folder
        self._torchscript = self._onnx = None

    def torchscript(self):
        if self._torchscript is None:
            path = export_torchscript(self.model, self.folder / "m.pt", example_shape=self.shape)
            self._torchscript = torch.jit.load(str(path))
        return self._torchscript

    def onnx(self):
        """The ONNX Runtime session; skips the test where onnxscript or onnxruntime is missing."""
        pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")
        ort = pytest.importorskip("onnxruntime")
        if self._onnx is None:
            path = export_onnx(self.model, self.folder / "m.onnx", example_shape=self.shape)
            self._onnx = ort.InferenceSession(str(path))
        return self._onnx


def _assert_exports_match(exports, x, residuals):
    """TorchScript (and ONNX, where installed) ``exports`` give ``residuals`` for ``x``."""
    assert tuple(x.shape[1:]) == exports.shape[1:]
    torch.testing.assert_close(exports.torchscript()(x)[1], residuals, atol=1e-4, rtol=0)
    _, exported = exports.onnx().run(["output", "residuals"], {"image": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(exported), residuals, atol=1e-4, rtol=0)


SHIPPED_SHAPE = (2, 1, 64, 56)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A model with consistency, bias_smooth, noise_snr and motion_open; its exports for 64x56 slices.

    One export serves the two tests below, which each feed it the input that exercises their step
    (``motion_open`` (0.5, 1) lifts the untrained detector's motion score of 0.95 to 1 on untruncated slices).
    """
    policy = {"bias_smooth": 0.1, "noise_snr": (9.0, 12.0), "motion_open": (0.5, 1.0)}
    model = build_model("tiny", seed=0, gates=True, consistency=True, **policy, **SMALL)
    return model, _Exports(model, SHIPPED_SHAPE, tmp_path_factory.mktemp("shipped"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_exports_keep_the_data_consistency_step(shipped):
    """A shipped model with model.consistency exports with it: the same residuals on a truncated input."""
    from artefix.artefacts.subsampling import centre_crop_kspace_image
    from artefix.fft import fourier_resize
    from artefix.models.consistency import measured_window

    model, exports = shipped
    clean = _x((2, *SHIPPED_SHAPE[2:]), seed=3).abs()  # torch.export needs a batch of 2 or more (dynamic axis)
    x = znorm(fourier_resize(centre_crop_kspace_image(clean, 2.0), SHIPPED_SHAPE[2:]).abs())[:, None].float()
    assert not measured_window(x[:, 0]).all()  # the step is found: the projection is exercised
    with torch.no_grad():
        eager = model.eval()(x)
        plain = model.residuals(x, policy=model.policy.replace(consistency=False))
    assert not torch.allclose(plain, eager.residuals, atol=1e-4)  # the step changes the residuals
    _assert_exports_match(exports, x, eager.residuals)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_exports_keep_the_self_ensemble(tmp_path):
    """A model shipped with model.ensemble exports with its transforms (transposes of a non-square input too)."""
    model = build_model("tiny", seed=0, gates=True, ensemble=8, **SMALL)
    x = _x((2, 1, 37, 50), seed=5)  # padded to 38x50, and to 50x38 when transposed
    with torch.no_grad():
        eager = model.eval()(x)
        single = model(x, policy=model.policy.replace(ensemble=1))
    assert not torch.allclose(single.residuals, eager.residuals, atol=1e-4)  # the ensemble is exercised
    _assert_exports_match(_Exports(model, x.shape, tmp_path), x, eager.residuals)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_exports_keep_the_physics_priors(shipped):
    """A model shipped with bias_smooth, noise_snr and motion_open (an untruncated input) exports with them."""
    model, exports = shipped
    h, w = SHIPPED_SHAPE[2:]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    clean = ((yy / 0.8) ** 2 + (xx / 0.7) ** 2 < 1).float()
    x = znorm(torch.stack([clean, clean + 0.4 * torch.randn((h, w), generator=torch.Generator().manual_seed(1))]))
    x = x[:, None]
    with torch.no_grad():
        eager = model.eval()(x)
        plain = model.eval().residuals(x, policy=model.policy.without_priors())
        shut = model.residuals(x, policy=model.policy.replace(motion_open=None))
    assert not torch.allclose(plain, eager.residuals, atol=1e-4)  # the priors are exercised
    assert not torch.allclose(shut, eager.residuals, atol=1e-4)  # and the opened motion gate
    _assert_exports_match(exports, x, eager.residuals)
