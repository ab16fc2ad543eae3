"""QC numbers of one scan: the detector's scores as ``artefix correct`` sees them, SNR, measured k-space, summary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artefix.correction import correct_volume
from artefix.data.io import Volume
from artefix.errors import InputError
from artefix.models import build_model
from artefix.models.priors import estimated_snr_db
from artefix.models.snr import noise_corrected_snr_db
from artefix.qc.measure import HEADS, SCAN_PERCENTILE, ScanQC, measure_volume, resolve_thresholds


def _model(**config):
    """A tiny model whose detector's scores differ from slice to slice (an untrained one scores every slice alike)."""
    net = build_model("tiny", seed=5, gates=True, **config)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        net.detector.score.weight.copy_(torch.randn(net.detector.score.weight.shape, generator=gen) * 3.0)
        net.detector.score.bias.zero_()
    return net.eval()


def _phantom(shape=(40, 36, 6), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = 300 * np.exp(-(((yy - shape[0] / 2) / 9.0) ** 2 + ((xx - shape[1] / 2) / 7.0) ** 2))
    noise = rng.random(shape) * np.linspace(5, 80, shape[2])  # noisier towards the last slice
    return (blob[..., None] * np.linspace(0.5, 1.0, shape[2]) + noise).astype(np.float32)


def _u(stack: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(stack.astype(np.float32))
    return (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True, correction=0)


def test_scores_are_the_detectors_with_the_noise_gate_on_the_scans_snr():
    net = _model(noise_snr=(-2.0, 6.0))  # the scan's SNR (about 1.9 dB) half-opens the noise gate
    volume = Volume(_phantom(), spacing=(1.0, 1.0, 3.0), meta={"slice_axis": 2})
    qc = measure_volume(volume, net)
    stack = np.moveaxis(volume.array, 2, 0)
    u = _u(stack)
    with torch.no_grad():
        snr = estimated_snr_db(u).double().numpy()
        scan_snr = float(np.median(snr))
        expected = net.detect(u[:, None], snr_db=torch.full((6,), scan_snr)).numpy()
    np.testing.assert_allclose(qc.gate_snr, snr, rtol=1e-5)
    np.testing.assert_allclose(qc.detection, expected, rtol=1e-5, atol=1e-6)
    assert qc.gate_snr_db == pytest.approx(scan_snr) and qc.scan_gate_snr() == pytest.approx(scan_snr)
    # the reported SNR: the noise-corrected estimate of each native slice, the scan's the counted slices' median
    corrected = noise_corrected_snr_db(torch.from_numpy(stack)).double().numpy()
    np.testing.assert_allclose(qc.snr_db, corrected, rtol=1e-5)
    assert qc.snr() == pytest.approx(float(np.median(corrected)))
    assert np.ptp(qc.detection[:, 2]) > 0.05  # the scores do vary: the comparison means something
    assert 0.05 < qc.detection[:, 3].max() < 0.9  # the noise score, scaled down by the gate at the scan's SNR
    per_slice = measure_volume(volume, net, snr_scope="slice")
    with torch.no_grad():
        np.testing.assert_allclose(per_slice.detection, net.detect(u[:, None]).numpy(), rtol=1e-5, atol=1e-6)
    assert per_slice.gate_snr_db is None and not np.allclose(per_slice.detection[:, 3], qc.detection[:, 3])
    # the numbers artefix correct records for the same scan
    record = correct_volume(volume, net).record
    np.testing.assert_allclose(qc.detection, record.detection, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(qc.gate_snr, record.snr_db, rtol=1e-5)
    # the scan's score: the 90th percentile over the counted slices (here all of them hold anatomy)
    assert qc.counted().all()
    for k, head in enumerate(HEADS):
        assert qc.score(head) == pytest.approx(np.percentile(expected[:, k], SCAN_PERCENTILE), rel=1e-5)


def test_constant_and_empty_slices_are_not_counted_and_worst_slices_rank_by_the_highest_score():
    data = _phantom((40, 36, 5))
    data[..., 0] = 7.0  # constant: never seen by the model
    data[..., 4] = np.random.default_rng(3).random((40, 36)) * 0.5  # no anatomy: scored, but not counted
    qc = measure_volume(Volume(data, meta={"slice_axis": 2}), _model())
    assert np.isnan(qc.detection[0]).all() and np.isnan(qc.snr_db[0]) and qc.constant.tolist()[0]
    assert np.isnan(qc.gate_snr[0])
    assert np.isfinite(qc.detection[4]).all() and not qc.foreground[4]
    assert qc.counted().tolist() == [False, True, True, True, False]
    counted = qc.detection[1:4]
    assert qc.score("motion") == pytest.approx(np.percentile(counted[:, HEADS.index("motion")], 90), rel=1e-6)
    best = counted.max(axis=1)
    assert qc.worst_slices(3) == [int(z) + 1 for z in np.argsort(-best, kind="stable")]
    assert qc.worst_slices(1) == [int(np.argmax(best)) + 1]


def test_a_zero_filled_scan_reads_as_accelerated():
    from artefix.artefacts.subsampling import centre_crop_kspace_image
    from artefix.data.samples import load_sample
    from artefix.fft import fourier_resize

    image = load_sample("brain-t2")[::2, ::2].astype(np.float32)  # 160 x 160
    low = np.abs(fourier_resize(centre_crop_kspace_image(image, 2.0), image.shape)).astype(np.float32)
    volume = Volume(np.stack([low, 0.9 * low], axis=-1), meta={"slice_axis": 2})
    qc = measure_volume(volume, _model(consistency=True))
    rows, cols = qc.kspace_fraction()
    assert rows == pytest.approx(0.5, abs=0.05) and cols == pytest.approx(0.5, abs=0.05)
    assert qc.acceleration() == pytest.approx(2.0, rel=0.1)
    # the numbers of the data-consistency step artefix correct records
    record = correct_volume(volume, _model(consistency=True)).record
    np.testing.assert_allclose(qc.kspace, record.kspace_window)
    full = measure_volume(Volume(np.stack([image, 0.9 * image], axis=-1), meta={"slice_axis": 2}), _model())
    assert full.acceleration() == pytest.approx(1.0)


def test_flags_follow_the_thresholds_and_a_model_without_a_detector_gives_no_scores():
    qc = ScanQC(
        heads=HEADS,
        axis=2,
        shape=(4, 4, 2),
        work_shape=(4, 4),
        detection=np.array([[0.1, 0.6, 0.3, 0.5], [0.1, 0.6, 0.3, 0.5]]),
        snr_db=np.array([20.0, 22.0]),
        gate_snr=np.array([25.0, 27.0]),
        kspace=np.ones((2, 2)),
        constant=np.zeros(2, bool),
        foreground=np.ones(2, bool),
    )
    assert qc.flags(resolve_thresholds()) == {"bias": False, "subsampling": True, "motion": False, "noise": True}
    assert qc.flags(resolve_thresholds({"noise": 0.51}))["noise"] is False
    assert qc.flags(resolve_thresholds(0.25))["motion"] is True
    with pytest.raises(InputError, match="blur"):
        resolve_thresholds({"blur": 0.5})
    with pytest.raises(InputError, match="from 0 to 1"):
        resolve_thresholds({"motion": 1.5})
    plain = measure_volume(Volume(_phantom((24, 24, 3)), meta={"slice_axis": 2}), build_model("tiny", seed=1))
    assert plain.detection is None and plain.scores() == dict.fromkeys(HEADS)
    assert plain.flags(resolve_thresholds()) == dict.fromkeys(HEADS)
    assert np.isfinite(plain.snr_db).all() and len(plain.worst_slices()) == 3


def test_unusable_volumes_are_one_line_input_errors():
    with pytest.raises(InputError, match="constant"):
        measure_volume(Volume(np.full((8, 8, 3), 2.0, np.float32)), _model())
    data = _phantom((16, 16, 3))
    data[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        measure_volume(Volume(data), _model())
