import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from artefix.data.samples import load_sample
from artefix.errors import InputError
from artefix.training.config import DataSection, load_config
from artefix.training.data import (
    SAMPLE_FOLDER,
    ArtefactDataModule,
    EpochSampler,
    RepeatedDataset,
    plan_data,
    read_scan,
)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

SAMPLE = DataSection(source="sample", matrix=(48, 48), repeats=3, val_repeats=4, batch_size=5, num_workers=0)


def module(data=SAMPLE, seed=0):
    dm = ArtefactDataModule(data, plan_data(data), seed)
    dm.setup("fit")
    return dm


def batches(loader):
    return [(b.corrupted.clone(), b.clean.clone(), b.artefact.clone(), list(b.params)) for b in loader]


def same(a, b):
    return all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and torch.equal(x[2], y[2]) and x[3] == y[3]
        for x, y in zip(a, b, strict=True)
    )


def test_validation_set_is_identical_across_runs_workers_and_epochs():
    first = module()
    reference = batches(first.val_dataloader())
    assert sum(len(b[0]) for b in reference) == 1 * 4  # one validation slice, four fixed corruptions
    # another run, DataLoader workers, a later epoch, another training seed would not matter
    second = module(DataSection(**{**SAMPLE.__dict__, "num_workers": 2}))
    second.train_set.set_epoch(5)
    assert same(reference, batches(second.val_dataloader()))
    # the four repeats are four different corruptions of the same clean slice
    clean = torch.cat([b[1] for b in reference])
    corrupted = torch.cat([b[0] for b in reference])
    assert all(torch.equal(clean[0], c) for c in clean)
    assert len({c.numpy().tobytes() for c in corrupted}) == 4
    # every item is Z-normalised per slice, as the model expects
    assert torch.allclose(corrupted.mean(dim=(-2, -1)), torch.zeros(4, 1), atol=1e-5)
    assert torch.allclose(corrupted.std(dim=(-2, -1), unbiased=False), torch.ones(4, 1), atol=1e-4)


def test_training_epochs_are_fresh_but_replayable():
    dm = module()
    loader = dm.train_dataloader()  # epoch 0 (no trainer attached)
    epoch0 = batches(loader)
    assert sum(len(b[0]) for b in epoch0) == 3 * 3
    dm.train_set.set_epoch(1)
    sampler = EpochSampler(dm.train_set, seed=0, grouped=False)
    sampler.set_epoch(1)
    epoch1 = [dm.train_set[i] for i in sampler]
    assert not torch.equal(epoch0[0][0][0], epoch1[0].corrupted)
    again = module()
    assert same(epoch0, batches(again.train_dataloader()))


def test_global_rng_untouched_by_the_data_pipeline():
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    dm = module()
    batches(dm.train_dataloader())
    batches(dm.val_dataloader())
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_repeated_dataset_items_and_seeds():
    dm = module()
    ds: RepeatedDataset = dm.train_set
    n = len(ds.index)
    assert len(ds) == 3 * n
    assert [c.seed for c in ds.copies][0] == 0 and len({c.seed for c in ds.copies}) == 3
    a, b = ds[1], ds[1 + n]
    assert (a.index, b.index) == (1, 1 + n)
    assert torch.equal(a.clean, b.clean)
    assert json.loads(a.params) != json.loads(b.params)
    with pytest.raises(IndexError):
        ds[len(ds)]


@pytest.mark.parametrize("grouped", [True, False])
def test_epoch_sampler_visits_every_item_once(grouped):
    ds = module().train_set
    sampler = EpochSampler(ds, seed=3, group=1, grouped=grouped)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(len(ds)))
        orders.append(order)
    assert orders[0] == orders[2] != orders[1]


def test_read_scan_builtin_sample_and_stacked_npz(tmp_path):
    vol = read_scan(tmp_path / SAMPLE_FOLDER / "brain-t1")
    assert np.array_equal(vol.array, load_sample("brain-t1"))
    with pytest.raises(InputError, match="unknown sample"):
        read_scan(tmp_path / SAMPLE_FOLDER / "knee")
    slices = np.random.default_rng(0).random((3, 20, 24)).astype(np.float32)
    np.savez(tmp_path / "s.npz", *slices)
    vol = read_scan(tmp_path / "s.npz")
    assert vol.array.shape == (20, 24, 3) and vol.meta["slice_axis"] == 2
    assert np.array_equal(vol.array[..., 1], slices[1])
    np.savez(tmp_path / "one.npz", slices[0])
    assert read_scan(tmp_path / "one.npz").array.shape == (20, 24)
    slices[1, 5, 5] = np.nan  # a stacked .npz is checked like every other scan
    np.savez(tmp_path / "nan.npz", *slices)
    with pytest.raises(InputError, match="NaN"):
        read_scan(tmp_path / "nan.npz")


def make_scans(root, patients=5, shape=(32, 32, 4)):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-(((yy - shape[0] / 2) / 8.0) ** 2 + ((xx - shape[1] / 2) / 7.0) ** 2))
    for p in range(patients):
        folder = root / f"patient{p:02d}"
        folder.mkdir(parents=True)
        for contrast in ("T1", "T2"):
            data = (100 * blob[..., None] * np.ones(shape[2]) + rng.random(shape)).astype(np.float32)
            nib.save(nib.Nifti1Image(data, np.eye(4)), folder / f"{contrast}.nii.gz")


def test_plan_from_files_splits_by_patient_and_writes_the_split(tmp_path):
    make_scans(tmp_path / "data" / "collection")
    data = DataSection(base=str(tmp_path / "data"), roots=("collection",), fractions=(0.6, 0.4, 0.0), matrix=(32, 32))
    plan = plan_data(data, tmp_path / "run" / "split.json")
    train = {plan.patient_of[f] for f in plan.train_files}
    val = {plan.patient_of[f] for f in plan.val_files}
    assert (len(train), len(val)) == (3, 2) and train.isdisjoint(val)
    assert len(plan.train_files) == 6 and len(plan.val_files) == 4  # both contrasts stay with their patient
    saved = DataSection(**{**data.__dict__, "split": str(tmp_path / "run" / "split.json")})
    assert plan_data(saved).train_files == plan.train_files
    dm = ArtefactDataModule(data, plan, 0)
    dm.setup("fit")
    assert len(dm.train_set) == 6 * 4 and len(dm.val_set) == 4 * 4


def test_plan_errors_are_input_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no scans found"):
        plan_data(DataSection(roots=(str(tmp_path / "empty"),)))
    with pytest.raises(InputError, match="no such file or folder"):
        plan_data(DataSection(roots=(str(tmp_path / "absent"),)))
    make_scans(tmp_path / "one", patients=1)
    with pytest.raises(InputError, match="validation set is empty"):
        plan_data(DataSection(roots=(str(tmp_path / "one"),)))
    with pytest.raises(InputError, match="cannot read split file"):
        plan_data(DataSection(split=str(tmp_path / "absent.json")))


@pytest.mark.shared_data
def test_brain_config_plan_on_the_shared_data(shared_data):
    config = load_config(CONFIGS / "mt_lc_brain.yaml", data_root=shared_data)
    plan = plan_data(config.data)
    sets = {name: set(plan.split.patients(name)) for name in ("train", "val", "test")}
    assert all(sets.values())
    assert sets["train"].isdisjoint(sets["val"]) and sets["val"].isdisjoint(sets["test"])
    assert sets["train"].isdisjoint(sets["test"])
    # stratified: the MS collection and IXI both reach every set
    for name in ("train", "val", "test"):
        assert any(p.startswith("patient") for p in sets[name]), name
        assert any(p.startswith("IXI") for p in sets[name]), name
    assert plan_data(config.data).split == plan.split  # deterministic
