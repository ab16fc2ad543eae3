import numpy as np
import pytest
import torch

from artefix.artefacts.base import znorm
from artefix.artefacts.sampler import apply_params, make_params
from artefix.data.samples import SAMPLE_NAMES, load_sample
from artefix.fft import fft2c
from artefix.models import build_model
from artefix.models.consistency import measured_window, mirrored, project_unmeasured


def _truncated(image, factor):
    """Magnitude image of the k-space window kept by the evaluation's super-resolution at ``factor`` per axis."""
    from artefix.artefacts.subsampling import centre_crop_kspace_image
    from artefix.fft import fourier_resize

    low = centre_crop_kspace_image(image, factor)
    return np.abs(fourier_resize(low, image.shape)).astype(np.float32)


def _as_batch(image):
    return torch.from_numpy(np.asarray(znorm(image), np.float32))[None]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_a_fully_sampled_scan_keeps_every_line(name):
    image = load_sample(name)
    assert measured_window(_as_batch(image)).all()


def test_super_resolution_windows_are_found_to_within_the_blurred_edge():
    """Per axis the window is found to within 3 lines of round(N / R), or that axis is kept whole."""
    found = total = 0
    for name in ("brain-t1", "brain-t2", "pelvis-t2"):
        for crop in (None, (201, 157)):
            image = load_sample(name)
            if crop is not None:
                top, left = (image.shape[0] - crop[0]) // 2, (image.shape[1] - crop[1]) // 2
                image = image[top : top + crop[0], left : left + crop[1]]
            for factor in (2.0, 3.0, 4.0):
                truncated = _truncated(image, factor)
                measured = measured_window(_as_batch(truncated))[0].numpy()
                k = np.abs(np.asarray(fft2c(truncated.astype(np.complex64))))
                assert measured[np.unravel_index(np.argmax(k), k.shape)]  # the centre is always measured
                for axis, n in enumerate(image.shape):
                    lines = np.flatnonzero(measured.any(1 - axis))
                    assert np.all(np.diff(lines) == 1)  # one band of lines
                    total += 1
                    if len(lines) == n:
                        continue
                    found += 1
                    assert abs(len(lines) - int(np.floor(n / factor + 0.5))) <= 3, (name, crop, factor, axis)
    assert found >= 0.9 * total


@pytest.mark.parametrize("artefact", ["noise", "bias", "motion"])
def test_other_artefacts_do_not_look_truncated(artefact):
    rng = np.random.default_rng(3)
    image = load_sample("brain-t2")
    params = make_params(artefact, rng, image.shape)
    corrupted = np.abs(apply_params(image, params)).astype(np.float32)
    assert measured_window(_as_batch(corrupted)).all()


def test_projection_removes_exactly_the_measured_kspace():
    rng = np.random.default_rng(0)
    residual = torch.from_numpy(rng.standard_normal((2, 33, 40)).astype(np.float32))
    measured = torch.zeros(2, 33, 40, dtype=torch.bool)
    measured[:, 10:24, 12:30] = True
    out = project_unmeasured(residual, measured)
    assert out.shape == residual.shape and out.dtype == residual.dtype
    k = fft2c(out.to(torch.complex64))
    assert torch.abs(k[measured]).max() < 1e-4
    assert torch.abs(k[mirrored(measured)]).max() < 1e-4  # a real image's k-space is conjugate-symmetric
    free = ~(measured | mirrored(measured))
    k_in = fft2c(residual.to(torch.complex64))
    assert torch.allclose(k[free], k_in[free], atol=1e-4)
    everything = torch.ones_like(measured)  # nothing truncated: the residual is left as it is
    assert torch.equal(project_unmeasured(residual, everything), residual)
    assert torch.allclose(project_unmeasured(residual, ~everything), residual, atol=1e-5)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        measured_window(torch.zeros(1, 1, 8, 8))


def test_model_with_consistency_changes_only_the_subsampling_residual_of_truncated_input():
    torch.manual_seed(0)
    plain = build_model("tiny", seed=1).eval()
    consistent = build_model("tiny", seed=1, consistency=True).eval()
    consistent.load_state_dict(plain.state_dict())
    heads = list(plain.head_names)
    sub = heads.index("subsampling")
    truncated = _truncated(load_sample("brain-t1"), 3.0)
    x = _as_batch(truncated)[:, None]
    with torch.no_grad():
        p, q = plain.residuals(x), consistent.residuals(x)
    others = [i for i in range(len(heads)) if i != sub]
    assert torch.equal(p[:, others], q[:, others])
    measured = measured_window(x[:, 0])
    k = fft2c(q[:, sub].to(torch.complex64))
    assert torch.abs(k[measured]).max() < 1e-4 * max(1.0, float(torch.abs(k).max()))
    assert not torch.allclose(p[:, sub], q[:, sub])
    clean = _as_batch(load_sample("brain-t1"))[:, None]
    with torch.no_grad():
        assert torch.allclose(plain.residuals(clean), consistent.residuals(clean))


def test_consistency_is_saved_with_the_model(tmp_path):
    from artefix.models.checkpoint import load_model, save_model

    model = build_model("tiny", seed=1, consistency=True)
    save_model(model, tmp_path / "m.safetensors")
    loaded, _ = load_model(tmp_path / "m.safetensors")
    assert loaded.config.consistency
    with pytest.raises(ValueError, match="consistency must be true or false"):
        build_model("tiny", consistency="yes")
