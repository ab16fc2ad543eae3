from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from artefix.artefacts.base import Artefact, params_to_dict, to_output, znorm
from artefix.artefacts.sampler import (
    BRAIN_TRAINING,
    PELVIS_TRAINING,
    apply_params,
    sample_training_corruption,
)
from artefix.data.dataset import ArtefactDataset, GroupedShuffleSampler, TrainingSample, stable_entropy
from artefix.data.slices import SliceIndex
from artefix.data.splits import make_split

MATRIX = (32, 32)


def _head(size: int = 40, n_slices: int = 6, seed: int = 0) -> np.ndarray:
    """(size, size, n_slices) magnitude volume: an empty first slice, then textured discs, Rician noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float) - size / 2
    vol = np.zeros((size, size, n_slices), np.float32)
    for z in range(1, n_slices):
        disc = (yy**2 + xx**2) <= (0.35 * size) ** 2
        texture = 1.0 + 0.3 * np.sin(xx / 3.0 + z) * np.cos(yy / 4.0)
        vol[..., z] = 100.0 * disc * texture
    re = vol + rng.standard_normal(vol.shape)
    im = rng.standard_normal(vol.shape)
    return np.hypot(re, im).astype(np.float32)


def _scans(tmp_path: Path, n_patients: int = 2, fmt: str = "npy") -> list[Path]:
    files = []
    for p in range(n_patients):
        folder = tmp_path / "data" / f"patient{p:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = _head(seed=p)
        if fmt == "npy":
            path = folder / "study1_T1W.npy"
            np.save(path, data)
        else:
            path = folder / "study1_T1W.nii.gz"
            nib.Nifti1Image(data, np.diag([0.8, 0.8, 3.0, 1.0])).to_filename(path)
        files.append(path)
    return files


@pytest.fixture
def scans(tmp_path: Path) -> list[Path]:
    return _scans(tmp_path)


def _corrupted(ds: ArtefactDataset, items: range) -> torch.Tensor:
    return torch.stack([ds[i].corrupted for i in items])


# --- samples -------------------------------------------------------------------------------------------


def test_sample_fields_shapes_and_znorm(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX)
    assert len(ds) == 10  # 5 non-empty slices x 2 scans; the empty first slice is filtered out
    for i in range(len(ds)):
        sample = ds[i]
        assert isinstance(sample, TrainingSample)
        for image in (sample.corrupted, sample.clean):
            assert image.shape == (1, *MATRIX) and image.dtype == torch.float32
            assert torch.isfinite(image).all()
            assert abs(float(image.mean())) < 1e-5 and abs(float(image.std(unbiased=False)) - 1.0) < 1e-4
        assert sample.artefact.dtype == torch.int64 and sample.artefact.shape == ()
        params = json.loads(sample.params)
        head = {"periodic-motion": "motion"}.get(params["artefact"], params["artefact"])
        assert int(sample.artefact) == Artefact(head).index
        assert sample.index == i


def test_sample_is_the_documented_corruption_of_the_clean_slice(scans: list[Path]) -> None:
    """corrupted = Znorm(|A(x)|), clean = Znorm(|x|) with A drawn from default_rng([seed, epoch, i])."""
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX, seed=7)
    ds.set_epoch(3)
    for i in (0, 4, 9):
        params = sample_training_corruption(np.random.default_rng([7, 3, i]), MATRIX, BRAIN_TRAINING)
        assert ds.params_for(i) == params
        x = np.array(ds.index.slice(i))
        sample = ds[i]
        np.testing.assert_allclose(sample.corrupted[0].numpy(), znorm(np.abs(apply_params(x, params))), atol=1e-5)
        np.testing.assert_allclose(sample.clean[0].numpy(), znorm(np.abs(x)), atol=1e-6)
        assert json.loads(sample.params) == json.loads(json.dumps(params_to_dict(params)))


def test_real_output_differs_from_magnitude_for_kspace_artefacts(scans: list[Path]) -> None:
    index = SliceIndex(scans, matrix=MATRIX)
    mag = ArtefactDataset(index, artefacts=("subsampling",), output="magnitude")
    real = ArtefactDataset(index, artefacts=("subsampling",), output="real")
    assert mag.params_for(2) == real.params_for(2)
    x = np.array(index.slice(2))
    y = apply_params(x, real.params_for(2))
    np.testing.assert_allclose(real[2].corrupted[0].numpy(), znorm(to_output(y, "real")), atol=1e-5)
    assert not torch.allclose(mag[2].corrupted, real[2].corrupted, atol=1e-3)


def test_bias_only_dataset_is_a_smooth_multiplicative_change(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX, artefacts=("bias",), mode="val")
    sample = ds[3]
    assert int(sample.artefact) == Artefact.BIAS.index
    x = np.array(ds.index.slice(3))
    field = apply_params(np.ones(MATRIX, np.float32), ds.params_for(3))
    np.testing.assert_allclose(
        sample.corrupted[0].numpy(), znorm(np.abs(x * field)), atol=1e-5
    )  # the bias field multiplies the image: corrupted/clean is the field up to Z-normalisation


# --- randomness ----------------------------------------------------------------------------------------


def test_validation_corruptions_are_fixed_by_the_seed(tmp_path: Path) -> None:
    scans = _scans(tmp_path, n_patients=3)
    a = ArtefactDataset.from_files(scans[:2], matrix=MATRIX, mode="val", seed=1)
    b = ArtefactDataset.from_files(scans[:2], matrix=MATRIX, mode="val", seed=1)
    first = _corrupted(a, range(len(a)))
    assert torch.equal(first, _corrupted(b, range(len(b))))  # the same seed twice: the same validation set
    a.set_epoch(5)
    assert torch.equal(first, _corrupted(a, range(len(a))))  # another epoch
    # Another seed is another validation set: every slice gets another corruption.
    other = ArtefactDataset(a.index, mode="val", seed=2)
    assert all(other.params_for(i) != a.params_for(i) for i in range(len(a)))
    assert all(not torch.equal(other[i].corrupted, first[i]) for i in range(len(a)))
    # Another set of scans moves the slices to other positions; each slice keeps its corruption.
    c = ArtefactDataset.from_files([scans[2], scans[1], scans[0]], matrix=MATRIX, mode="val", seed=1)
    keys = {ref.key: i for i, ref in enumerate(c.index.refs)}
    for i, ref in enumerate(a.index.refs):
        assert c.params_for(keys[ref.key]) == a.params_for(i)
    # The generator is seeded by the seed and SHA-256 of the slice name: constants, not Python's salted hash().
    assert stable_entropy("abc") == [0xBF1678BA, 0xEACF018F, 0xDE404141, 0x2322AE5D]  # SHA-256 of "abc"
    for ds in (a, other):
        assert ds.params_for(0) == sample_training_corruption(
            np.random.default_rng([ds.seed, *stable_entropy(ds.index.refs[0].key)]), MATRIX, BRAIN_TRAINING
        )
    # Different slices get different corruptions, and the test mode follows the same rule.
    assert len({json.dumps(a.params_for(i).__dict__, sort_keys=True) for i in range(len(a))}) == len(a)
    test = ArtefactDataset(a.index, mode="test", seed=1)
    assert all(test.params_for(i) == a.params_for(i) for i in range(len(a)))


def test_training_corruptions_change_with_the_epoch(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX)
    epoch0 = [ds.params_for(i) for i in range(len(ds))]
    ds.set_epoch(1)
    epoch1 = [ds.params_for(i) for i in range(len(ds))]
    assert sum(p != q for p, q in zip(epoch0, epoch1, strict=True)) == len(ds)
    ds.set_epoch(0)
    assert [ds.params_for(i) for i in range(len(ds))] == epoch0
    other_seed = ArtefactDataset(ds.index, seed=1)
    assert other_seed.params_for(0) != epoch0[0]
    with pytest.raises(ValueError, match="epoch must be non-negative, got -1"):
        ds.set_epoch(-1)


def test_global_rng_state_is_untouched(scans: list[Path]) -> None:
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX)
    for i in range(len(ds)):
        ds[i]
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


# --- artefact distribution -------------------------------------------------------------------------------


def test_artefact_heads_are_uniform_over_the_four_heads(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX)
    from artefix.artefacts.sampler import head_of

    counts: Counter[int] = Counter()
    for epoch in range(60):
        ds.set_epoch(epoch)
        counts.update(head_of(ds.params_for(i)).index for i in range(len(ds)))
    n = sum(counts.values())  # 600 draws; each head p = 1/4, std = sqrt(600 * 3/16) = 10.6
    assert set(counts) == {0, 1, 2, 3}
    assert all(abs(counts[h] - n / 4) < 45 for h in range(4)), counts


def test_pelvis_distribution_maps_periodic_motion_to_the_motion_head(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX, artefacts=PELVIS_TRAINING, mode="val")
    names: Counter[str] = Counter()
    for seed in range(40):
        val = ArtefactDataset(ds.index, artefacts=PELVIS_TRAINING, mode="val", seed=seed)
        names.update(type(val.params_for(i)).name for i in range(len(val)))
    assert set(names) == set(PELVIS_TRAINING)
    periodic = ArtefactDataset(ds.index, artefacts=("periodic-motion",), mode="val")
    assert int(periodic[0].artefact) == Artefact.MOTION.index


def test_weights_select_the_artefact(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX, weights=(0, 0, 0, 1))
    assert {int(ds[i].artefact) for i in range(3)} == {Artefact.NOISE.index}


# --- DataLoader ---------------------------------------------------------------------------------------


def _epoch(loader: DataLoader, ds: ArtefactDataset, epoch: int) -> tuple[torch.Tensor, list[str]]:
    ds.set_epoch(epoch)
    corrupted, params = [], []
    for batch in loader:
        assert batch.corrupted.shape[1:] == (1, *MATRIX) and batch.artefact.dtype == torch.int64
        assert batch.artefact.shape == batch.index.shape == (batch.corrupted.shape[0],)
        assert all(isinstance(p, str) for p in batch.params)
        corrupted.append(batch.corrupted)
        params.extend(batch.params)
    return torch.cat(corrupted), params


@pytest.mark.parametrize("persistent", [False, True])
def test_dataloader_with_two_workers(scans: list[Path], persistent: bool) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX)
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2, persistent_workers=persistent)
    first, params0 = _epoch(loader, ds, 0)
    second, params1 = _epoch(loader, ds, 1)
    again, params0b = _epoch(loader, ds, 0)
    assert first.shape == (len(ds), 1, *MATRIX)
    assert torch.equal(first, again) and params0 == params0b  # a re-run of an epoch is identical
    assert all(p != q for p, q in zip(params0, params1, strict=True))  # the next epoch is fresh
    assert not torch.allclose(first, second)
    # Workers produce exactly what the main process does.
    ds.set_epoch(1)
    assert torch.equal(second, _corrupted(ds, range(len(ds))))


def test_grouped_shuffle_sampler_keeps_scans_together(tmp_path: Path) -> None:
    scans = _scans(tmp_path, n_patients=4)
    ds = ArtefactDataset.from_files(scans, matrix=MATRIX, index_options={"cache_size": 2})
    sampler = GroupedShuffleSampler(ds, group=2, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(len(ds))) and len(sampler) == len(ds)
    files_per_half = [{ds.index.file_index(i) for i in order[k : k + 10]} for k in (0, 10)]
    assert all(len(f) == 2 for f in files_per_half)  # each block of 10 slices comes from 2 scans
    assert files_per_half[0].isdisjoint(files_per_half[1])
    sampler.set_epoch(1)
    assert list(sampler) != order
    sampler.set_epoch(0)
    assert list(sampler) == order
    with pytest.raises(ValueError, match="group"):
        GroupedShuffleSampler(ds, group=0)


# --- construction ---------------------------------------------------------------------------------------


def test_from_split_uses_the_split_patients(tmp_path: Path) -> None:
    scans = _scans(tmp_path, n_patients=3, fmt="nifti")
    split = make_split(scans, (0.34, 0.33, 0.33), seed=0)
    for mode in ("train", "val", "test"):
        ds = ArtefactDataset.from_split(split, mode, matrix=MATRIX)
        assert {r.patient for r in ds.index.refs} == set(split.patients(mode))
        assert ds.mode == mode and len(ds) == 5
        assert ds[0].corrupted.shape == (1, *MATRIX)
    empty = make_split(scans, (0.67, 0.33, 0.0))
    with pytest.raises(ValueError, match="'test' set is empty"):
        ArtefactDataset.from_split(empty, "test")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "eval"}, "mode must be one of"),
        ({"output": "complex"}, "output must be one of"),
        ({"artefacts": ("blur",)}, "unknown artefact 'blur'"),
        ({"artefacts": ()}, "at least one"),
        ({"weights": (1, 1)}, "weights must be 4"),
        ({"seed": -3}, "seed must be non-negative"),
        ({"clean_fraction": 1.0}, "clean_fraction"),
        ({"severity_fraction": -0.1}, "severity_fraction"),
    ],
)
def test_bad_options(scans: list[Path], kwargs: dict[str, object], match: str) -> None:
    index = SliceIndex(scans, matrix=MATRIX)
    with pytest.raises(ValueError, match=match):
        ArtefactDataset(index, **kwargs)  # type: ignore[arg-type]


def test_zscored_index_is_refused(scans: list[Path]) -> None:
    with pytest.raises(ValueError, match="Z-normalised"):
        ArtefactDataset(SliceIndex(scans, matrix=MATRIX, normalise="zscore"))


# --- real data ------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_volume_dataset(shared_data: Path) -> None:
    path = shared_data / "open_ms_data_ljubljana_longitudinal" / "patient03" / "study2_T1W.nii.gz"
    ds = ArtefactDataset.from_files([path], matrix=(64, 64), mode="val")
    assert 20 <= len(ds) <= 48
    heads = set()
    for i in range(0, len(ds), max(1, len(ds) // 6)):
        sample = ds[i]
        heads.add(int(sample.artefact))
        for image in (sample.corrupted, sample.clean):
            assert image.shape == (1, 64, 64) and torch.isfinite(image).all()
            assert abs(float(image.mean())) < 1e-4 and abs(float(image.std(unbiased=False)) - 1.0) < 1e-3
        # The corruption changes the image but keeps it recognisably the same anatomy.
        corr = float(torch.corrcoef(torch.stack([sample.corrupted.flatten(), sample.clean.flatten()]))[0, 1])
        assert 0.2 < corr < 1.0
    assert ds.index.refs[0].key.startswith("patient03/study2_T1W.nii.gz#")


def test_clean_fraction_leaves_items_untouched_with_label_minus_one(scans: list[Path]) -> None:
    from artefix.data.dataset import NO_ARTEFACT

    ds = ArtefactDataset.from_files(scans, matrix=(32, 32), clean_fraction=0.5, seed=2)
    labels = [int(ds[i].artefact) for i in range(len(ds))]
    assert NO_ARTEFACT in labels and any(label >= 0 for label in labels)
    for i, label in enumerate(labels):
        item = ds[i]
        if label == NO_ARTEFACT:
            assert json.loads(item.params) == {"artefact": "none"}
            torch.testing.assert_close(item.corrupted, item.clean)
        else:
            assert json.loads(item.params)["artefact"] != "none"


def test_severity_fraction_draws_the_evaluation_family(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(scans, matrix=(32, 32), artefacts=("subsampling",), severity_fraction=1.0, seed=0)
    for i in range(len(ds)):
        params = json.loads(ds[i].params)
        assert params["kind"] == "centred"  # the super-resolution masks of the paper's evaluation


def test_level_ranges_bound_the_evaluation_family_draws(scans: list[Path]) -> None:
    ds = ArtefactDataset.from_files(
        scans, matrix=(32, 32), artefacts=("noise",), severity_fraction=1.0, level_ranges={"noise": [2, 3]}, seed=0
    )
    assert ds.level_ranges == {"noise": (2.0, 3.0)}
    for epoch in range(3):
        ds.set_epoch(epoch)
        assert all(2.0 <= json.loads(ds[i].params)["snr_db"] <= 3.0 for i in range(len(ds)))
    with pytest.raises(ValueError, match="low <= high"):
        ArtefactDataset.from_files(scans, matrix=(32, 32), level_ranges={"noise": [3, 2]})


def test_native_index_is_cropped_by_scale_crop(tmp_path: Path) -> None:
    from artefix.data.augment import ScaleCrop
    from artefix.data.slices import SliceIndex

    np.save(tmp_path / "big.npy", _head(48, 4, seed=1))
    index = SliceIndex([tmp_path / "big.npy"], matrix=(32, 32), fit="native", normalise="percentile")
    assert index.slice(0).shape == (48, 48)
    train = ArtefactDataset(index, mode="train", crop=ScaleCrop((32, 32)))
    val = ArtefactDataset(index, mode="val", crop=ScaleCrop((32, 32)))
    assert train[0].corrupted.shape == (1, 32, 32)
    expected = znorm(ScaleCrop((32, 32)).centre(index.slice(1)))
    np.testing.assert_allclose(val[1].clean[0].numpy(), expected, atol=1e-5)  # native pixels, centre window
    train.set_epoch(1)
    first = train[0].clean
    train.set_epoch(2)
    assert not torch.equal(first, train[0].clean)  # a fresh zoom and window every epoch
    with pytest.raises(ValueError, match="needs a crop"):
        ArtefactDataset(index)
    with pytest.raises(ValueError, match="differs"):
        ArtefactDataset(index, crop=ScaleCrop((16, 16)))
