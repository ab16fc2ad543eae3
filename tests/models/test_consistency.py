import numpy as np
import pytest
import torch

from artefix.artefacts.base import znorm
from artefix.artefacts.sampler import apply_params, make_params
from artefix.artefacts.subsampling import apply_subsampling, subsampling_mask, subsampling_params_for_severity
from artefix.data.samples import SAMPLE_NAMES, load_sample
from artefix.fft import fft2c
from artefix.models import build_model
from artefix.models.consistency import measured_window, mirrored, project_unmeasured
from artefix.models.policy import InferencePolicy


def _truncated(image, factor):
    """Magnitude image of the k-space window kept by the evaluation's super-resolution at ``factor`` per axis."""
    from artefix.artefacts.subsampling import centre_crop_kspace_image
    from artefix.fft import fourier_resize

    low = centre_crop_kspace_image(image, factor)
    return np.abs(fourier_resize(low, image.shape)).astype(np.float32)


def _as_batch(image):
    return torch.from_numpy(np.asarray(znorm(image), np.float32))[None]


def _as_stack(stack):
    """Z-normalised float32 tensor ``(B, H, W)`` of slices ``(B, H, W)``, as the model sees them."""
    return torch.from_numpy(np.asarray(znorm(stack), np.float32))


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


@pytest.fixture()
def one_thread():
    """Run on one intra-op thread: on a few shared cores the FFTs of many small batches are faster that way."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["random", "equispaced"])
def test_line_masks_do_not_look_truncated(kind, one_thread):
    """A random or equispaced line mask keeps lines beyond its centre band: no edge, so no window."""
    for name in SAMPLE_NAMES:
        image = load_sample(name)
        for r in (2, 4, 8):
            for pe_axis in (-2, -1):
                params = subsampling_params_for_severity(r, image.shape, 0, mask=kind, pe_axis=pe_axis)
                masked = np.abs(apply_subsampling(image, params)).astype(np.float32)
                assert measured_window(_as_batch(masked)).all(), (name, r, pe_axis)


def test_mr_small_is_not_truncated_and_its_truncations_are(one_thread):
    """pydicom's 64x64 MR_small.dcm: its spectrum falls off smoothly in every column (once read as 14 % measured)."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    image = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float32)
    assert image.shape == (64, 64)
    assert measured_window(_as_batch(image)).all()
    for factor in (2, 3, 4):
        found, true = _window_offsets(_truncate(image[None], factor), factor)
        assert np.abs(found - true).max() <= 2, (factor, found, true)


def _truncate(stack, factor):
    """Slices ``(B, H, W)`` as ``artefix simulate --artefact subsampling --severity factor`` leaves them.

    Centred k-space window of ``1 / factor`` per axis, computed in float32 (a scan as read from disk), magnitude:
    bit for bit the volume ``artefix simulate`` writes (checked on IXI013 at severity 3).
    """
    params = subsampling_params_for_severity(factor, stack.shape[-2:], 0)  # centred: the window is 1 / factor per axis
    return np.abs(apply_subsampling(np.asarray(stack, np.float32), params))  # float32 in: complex64 throughout


def _edges(mask):
    """First and last True rows and columns of each ``(H, W)`` mask in ``(B, H, W)``: ``(B, 4)``."""
    rows, cols = mask.any(-1), mask.any(-2)
    first = lambda m: m.argmax(-1)  # noqa: E731
    last = lambda m: m.shape[-1] - 1 - m[..., ::-1].argmax(-1)  # noqa: E731
    return np.stack([first(rows), last(rows), first(cols), last(cols)], axis=-1)


def _window_offsets(truncated, factor):
    """Edges of the window found in ``truncated`` ``(B, H, W)`` and of the true centred window: ``(B, 4)`` each."""
    params = subsampling_params_for_severity(factor, truncated.shape[-2:], 0)
    true = _edges(subsampling_mask(params, truncated.shape[-2:])[None])
    found = _edges(measured_window(_as_stack(truncated)).numpy())
    return found, np.broadcast_to(true, found.shape)


SLICE_FRACTIONS = (0.3, 0.4, 0.5)
"""Where along the last axis (the one ``artefix simulate`` slices) the real volumes are sampled. Interior slices:
a volume's first and last can be nearly empty (the skull-stripped MR_Gd's last nine hold 1 to 1800 non-zero voxels
of 33000), and a few voxels' spectrum says little about the k-space they were measured with. Fractions up to the
middle keep the read short (gzip is read from the start)."""


@pytest.fixture(scope="module")
def real_slices(shared_data):
    """``(name, (B, H, W) float32)`` stacks: a few interior slices of every scan in ../shared/data, pydicom's
    MR_small.dcm and the shipped samples, each also with its last row and column dropped (odd for even sizes)."""
    nib = pytest.importorskip("nibabel")
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    stacks = []
    for path in sorted(shared_data.rglob("*.nii.gz")):
        proxy = nib.load(path).dataobj
        z = [round(f * (proxy.shape[-1] - 1)) for f in SLICE_FRACTIONS]
        block = np.asarray(proxy[..., z[0] : z[-1] + 1], np.float32)
        stacks.append((str(path.relative_to(shared_data)), np.moveaxis(block[..., [i - z[0] for i in z]], -1, 0)))
    series = sorted({f.parent for f in shared_data.rglob("*.dcm")})
    for folder in series:
        files = sorted(folder.glob("*.dcm"))
        picked = [files[round(f * (len(files) - 1))] for f in SLICE_FRACTIONS]
        pixels = np.stack([pydicom.dcmread(f).pixel_array.astype(np.float32) for f in picked])
        stacks.append((str(folder.relative_to(shared_data)), pixels))
    with np.load(shared_data / "msd_brain_slices_via_openjphpy" / "dataset0_data.npz") as npz:
        stacks.append(("msd", np.stack([npz[k].astype(np.float32) for k in npz.files])))
    stacks += [(name, load_sample(name)[None].astype(np.float32)) for name in SAMPLE_NAMES]
    stacks.append(("MR_small", pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array[None].astype(np.float32)))
    assert len(stacks) >= 47 + 10 + 1 + 4 + 1, [name for name, _ in stacks]  # 47 NIfTI, 10 DICOM series
    return [(name, s) for name, stack in stacks for s in (stack, stack[:, :-1, :-1])]


@pytest.mark.shared_data
def test_no_real_scan_looks_truncated(real_slices, one_thread):
    """Every untruncated slice (of every scan, odd and even sizes) keeps every line: no false truncation."""
    cut = []
    for name, stack in real_slices:
        measured = measured_window(_as_stack(stack))
        cut += [(name, stack.shape, z) for z in np.flatnonzero(~measured.numpy().all(axis=(1, 2)))]
    assert not cut, cut


@pytest.mark.shared_data
def test_truncated_real_scans_are_found_to_within_two_lines(real_slices, one_thread, tmp_path):
    """The same slices truncated as ``artefix simulate --artefact subsampling --severity R`` does (centred window of
    1/R per axis, magnitude, float32) and read back from a NIfTI: each of the four edges is found to within two
    lines (the magnitude's tail blurs the edge by a line; a window one line too wide is the usual error)."""
    nib = pytest.importorskip("nibabel")
    from artefix.data.io import read_volume

    worst = {}
    for i, (name, stack) in enumerate(real_slices):
        truncated = {factor: _truncate(stack, factor) for factor in (2, 3, 4)}
        path = tmp_path / f"{i}.nii"  # the round trip of `artefix simulate OUT.nii.gz` and `artefix correct`
        nib.save(nib.Nifti1Image(np.concatenate(list(truncated.values())).transpose(1, 2, 0), np.eye(4)), path)
        read = np.moveaxis(read_volume(path).array, -1, 0)
        for j, factor in enumerate(truncated):
            found, true = _window_offsets(read[j * len(stack) : (j + 1) * len(stack)], factor)
            worst[(name, stack.shape, factor)] = int(np.abs(found - true).max())
    assert len(worst) == 3 * len(real_slices)
    assert max(worst.values()) <= 2, {k: v for k, v in worst.items() if v > 2}


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
    assert loaded.policy.consistency
    with pytest.raises(ValueError, match="consistency must be true or false"):
        build_model("tiny", consistency="yes")


def test_truncation_gate_drops_the_subsampling_residual_only_where_nothing_is_truncated():
    """With ``truncation_gate`` the subsampling head acts on truncated slices alone; other heads never change."""
    plain = build_model("tiny", seed=1, gates=True, consistency=True).eval()
    gated = build_model("tiny", seed=1, gates=True, consistency=True, truncation_gate=True).eval()
    gated.load_state_dict(plain.state_dict())
    sub = plain.head_names.index("subsampling")
    others = [i for i in range(len(plain.head_names)) if i != sub]
    clean = load_sample("brain-t1")
    x = _as_stack(np.stack([clean, _truncated(clean, 3.0)]))[:, None]
    with torch.no_grad():
        p, q = plain.residuals(x), gated.residuals(x)
        scores_p, scores_q = plain.detect(x), gated.detect(x)
    assert measured_window(x[:1, 0]).all() and not measured_window(x[1:, 0]).all()
    assert float(p[0, sub].abs().max()) > 0 and torch.equal(q[0, sub], torch.zeros_like(q[0, sub]))
    assert float(scores_p[0, sub]) > 0 and float(scores_q[0, sub]) == 0.0
    assert torch.equal(p[1], q[1]) and torch.equal(scores_p[1], scores_q[1])
    assert torch.equal(p[:, others], q[:, others])
    gated.train()
    with torch.no_grad():
        assert torch.equal(gated.residuals(x), plain.train().residuals(x))  # eval mode only


def test_truncation_gate_needs_consistency_and_is_saved(tmp_path):
    from artefix.models.checkpoint import load_model, save_model

    with pytest.raises(ValueError, match="truncation_gate needs consistency"):
        build_model("tiny", truncation_gate=True)
    with pytest.raises(ValueError, match="truncation_gate must be true or false"):
        build_model("tiny", consistency=True, truncation_gate=1)
    save_model(build_model("tiny", seed=1, consistency=True, truncation_gate=True), tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors")[0].policy.truncation_gate


def test_motion_open_opens_the_motion_gate_only_where_nothing_is_truncated():
    """``motion_open`` (t, g) makes the motion gate ``max(s, min(g, g s / t))`` on untruncated slices only."""
    model = build_model("tiny", seed=1, gates=True, consistency=True).eval()
    motion = model.head_names.index("motion")
    others = [i for i in range(len(model.head_names)) if i != motion]
    clean = load_sample("brain-t1")
    x = _as_stack(np.stack([clean, _truncated(clean, 3.0)]))[:, None]
    with torch.no_grad():
        model.detector.score.bias[motion] = -2.0  # a low motion score, as the shipped detector gives
        raw = float(model.gate_scores(x)[0, motion])
        base = model(x)
        ungated = model.ungated_residuals(x)
    assert measured_window(x[:1, 0]).all() and not measured_window(x[1:, 0]).all()
    assert 0.05 < raw < 0.95  # the tiny model's score lets every branch below be told apart
    for (score, gate), expected in [
        ((raw / 0.5, 0.8), 0.4),  # on the ramp: the score is 1/2 of the way up to 0.8
        ((raw / 2, 0.8), 0.8),  # past the ramp: held at the gate
        ((raw / 2, raw / 2), raw),  # a gate below the score keeps the score
    ]:
        policy = model.policy.replace(motion_open=(score, gate))
        with torch.no_grad():
            opened = model(x, policy=policy)
            detected = model.detect(x, policy=policy)
        torch.testing.assert_close(opened.scores[0, motion], torch.tensor(expected), rtol=0, atol=1e-6)
        torch.testing.assert_close(detected, opened.scores, rtol=0, atol=1e-6)  # detect() reports that gate
        torch.testing.assert_close(opened.residuals[0, motion], expected * ungated[0, motion], rtol=0, atol=1e-5)
        assert torch.equal(opened.scores[1], base.scores[1]) and torch.equal(opened.residuals[1], base.residuals[1])
        assert torch.equal(opened.residuals[:, others], base.residuals[:, others])
    model.train()
    with torch.no_grad():
        assert torch.equal(model(x, policy=policy).residuals, model(x).residuals)  # eval mode only


@pytest.mark.parametrize("bad", [0.5, (0, 0.5), (0.5, 0.0), (-0.1, 0.5), (0.5, 1.5), ("0.5", 0.5), (True, 0.5), (0.1,)])
def test_motion_open_is_a_score_and_a_gate_in_the_unit_interval(bad):
    with pytest.raises(ValueError, match=r"motion_open must be None or \(score, gate\) in \(0, 1\]"):
        InferencePolicy(motion_open=bad)
    policy = InferencePolicy(motion_open=[0.015, 1])
    assert policy.motion_open == (0.015, 1.0) and not InferencePolicy().steps()
    assert policy.steps() == ["motion gate opened to 1 from a detector score of 0.015 (k-space not truncated)"]
    assert InferencePolicy.from_dict(policy.to_dict()) == policy
