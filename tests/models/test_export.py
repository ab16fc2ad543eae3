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


def _assert_exports_match(model, x, residuals, tmp_path):
    """TorchScript (and ONNX, where installed) exports of ``model`` give ``residuals`` for ``x``."""
    shape = tuple(x.shape)
    loaded = torch.jit.load(str(export_torchscript(model, tmp_path / "m.pt", example_shape=shape)))
    torch.testing.assert_close(loaded(x)[1], residuals, atol=1e-4, rtol=0)
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx", example_shape=shape)))
    _, exported = session.run(["output", "residuals"], {"image": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(exported), residuals, atol=1e-4, rtol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_exports_keep_the_data_consistency_step(tmp_path):
    """A shipped model with model.consistency exports with it: the same residuals on a truncated input."""
    from artefix.artefacts.subsampling import centre_crop_kspace_image
    from artefix.fft import fourier_resize
    from artefix.models.consistency import measured_window

    model = build_model("tiny", seed=0, consistency=True, gates=True)
    clean = _x((2, 64, 56), seed=3).abs()  # torch.export needs a batch of 2 or more for a dynamic batch axis
    x = znorm(fourier_resize(centre_crop_kspace_image(clean, 2.0), (64, 56)).abs())[:, None].float()
    assert not measured_window(x[:, 0]).all()  # the step is found: the projection is exercised
    with torch.no_grad():
        eager = model.eval()(x)
    _assert_exports_match(model, x, eager.residuals, tmp_path)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_exports_keep_the_self_ensemble(tmp_path):
    """A model shipped with model.ensemble exports with its transforms (transposes of a non-square input too)."""
    model = build_model("tiny", seed=0, gates=True, ensemble=8)
    x = _x((2, 1, 37, 50), seed=5)
    with torch.no_grad():
        eager = model.eval()(x)
        single = model(x, policy=model.policy.replace(ensemble=1))
    assert not torch.allclose(single.residuals, eager.residuals, atol=1e-4)  # the ensemble is exercised
    _assert_exports_match(model, x, eager.residuals, tmp_path)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_exports_keep_the_physics_priors(tmp_path):
    """A model shipped with model.bias_smooth and model.noise_snr exports with both."""
    model = build_model("tiny", seed=0, gates=True, bias_smooth=0.1, noise_snr=(9.0, 12.0))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 40), torch.linspace(-1, 1, 36), indexing="ij")
    clean = ((yy / 0.8) ** 2 + (xx / 0.7) ** 2 < 1).float()
    x = znorm(torch.stack([clean, clean + 0.4 * torch.randn((40, 36), generator=torch.Generator().manual_seed(1))]))
    x = x[:, None]
    with torch.no_grad():
        eager = model.eval()(x)
        plain = model.eval().residuals(x, policy=model.policy.without_priors())
    assert not torch.allclose(plain, eager.residuals, atol=1e-4)  # the priors are exercised
    _assert_exports_match(model, x, eager.residuals, tmp_path)
