import pytest
import torch

from artefix.artefacts.base import znorm
from artefix.models import build_model
from artefix.models.checkpoint import load_model, save_model, transfer_weights
from artefix.models.detector import INITIAL_LOGIT, ArtefactDetector
from artefix.models.export import export_torchscript


def _x(shape, seed=0):
    return znorm(torch.randn(shape, generator=torch.Generator().manual_seed(seed)))


def test_detector_scores_are_per_head_probabilities_starting_open():
    det = ArtefactDetector(4)
    g = det(_x((3, 1, 40, 52)))
    assert g.shape == (3, 4) and bool(((g > 0) & (g < 1)).all())
    torch.testing.assert_close(g, torch.full_like(g, torch.sigmoid(torch.tensor(INITIAL_LOGIT)).item()))


def test_gates_scale_each_residual_by_its_score():
    gated = build_model("tiny", seed=0, gates=True).eval()
    plain = build_model("tiny", seed=0).eval()
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("detector.")})
    with torch.no_grad():
        gated.detector.score.weight.normal_(0, 0.5)  # scores that differ per head and sample
        x = _x((2, 1, 37, 50))
        g = gated.detect(x)
        torch.testing.assert_close(gated(x).residuals, plain(x).residuals * g[:, :, None, None], atol=1e-5, rtol=1e-4)
        gated.detector.score.bias.fill_(-30.0)  # "no artefact anywhere": the model is the identity
        torch.testing.assert_close(gated(x).output, x, atol=1e-5, rtol=0)
    assert plain.detect(x) is None


def test_gated_model_round_trips_and_starts_from_ungated_weights(tmp_path):
    source = build_model("tiny", seed=1).eval()
    target = build_model("tiny", seed=2, gates=True).eval()
    report = transfer_weights(target, source)
    assert all(k.startswith("detector.") for k in report["kept"] if not k.endswith("num_batches_tracked"))
    path = save_model(target, tmp_path / "g.safetensors")
    loaded, _ = load_model(path)
    assert loaded.config.gates and loaded.detector is not None
    x = _x((1, 1, 32, 32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).output, target(x).output)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_gated_model_exports_to_torchscript(tmp_path):
    model = build_model("tiny", seed=0, gates=True)
    loaded = torch.jit.load(str(export_torchscript(model, tmp_path / "m.pt", example_shape=(1, 1, 37, 50))))
    x = _x((2, 1, 37, 50))
    with torch.no_grad():
        eager = model.eval()(x)
        output, residuals = loaded(x)
    torch.testing.assert_close(output, eager.output, atol=1e-4, rtol=0)
    torch.testing.assert_close(residuals, eager.residuals, atol=1e-4, rtol=0)


def test_a_gated_model_runs_in_float64():
    model = build_model("tiny", seed=0, gates=True).eval()
    x = torch.randn(2, 1, 24, 20)
    with torch.no_grad():
        single = model(x).residuals
        double = model.double()(x.double()).residuals
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, atol=1e-4, rtol=0)
