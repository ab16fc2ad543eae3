"""artefix.integrations.monai with the real MONAI: shapes, metadata, slices, seeding, replay, DataLoader."""

import importlib
import os

import numpy as np
import pytest
import torch

from artefix.artefacts.sampler import compose
from artefix.integrations.common import apply_slice_params


def require_extra(module: str):
    """Import an optional library: skip where it is absent, fail where ``ARTEFIX_REQUIRE_SHARED_DATA=1`` (CI)."""
    if os.environ.get("ARTEFIX_REQUIRE_SHARED_DATA") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"pip install 'artefix[{module}]'")


monai = require_extra("monai")
from monai.data import DataLoader, Dataset, MetaTensor  # noqa: E402
from monai.transforms import Compose  # noqa: E402

from artefix.integrations.monai import RandArtefact, RandArtefactd  # noqa: E402

AFFINE = torch.tensor([[0.0, 0.9, 0, 10], [1.2, 0, 0, -5], [0, 0, 3.0, 2], [0, 0, 0, 1]], dtype=torch.float64)


def _image(shape=(1, 32, 32, 4), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-1, 1, shape[1])[:, None]
    y = torch.linspace(-1, 1, shape[2])[None, :]
    blob = torch.exp(-(x**2 + y**2) * 3).reshape(1, shape[1], shape[2], *([1] * (len(shape) - 3)))
    data = (blob + 0.1 * torch.rand(shape, generator=g)).to(dtype)
    return MetaTensor(data, affine=AFFINE, meta={"filename_or_obj": "scan.nii.gz"})


@pytest.mark.parametrize("shape", [(1, 32, 32), (2, 32, 24), (1, 32, 32, 4)], ids=["2d", "2d-2ch", "3d"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_metadata_are_kept(shape, dtype):
    image = _image(shape, dtype=dtype)
    out = RandArtefactd("image", "noise", severity=0.0).set_random_state(0)({"image": image, "label": 7})
    assert isinstance(out["image"], MetaTensor) and out["label"] == 7
    assert out["image"].shape == shape and out["image"].dtype == dtype
    assert torch.equal(out["image"].affine, AFFINE) and out["image"].meta["filename_or_obj"] == "scan.nii.gz"
    assert not torch.equal(out["image"].as_tensor(), image.as_tensor())


def test_numpy_input_becomes_a_tensor_like_monai_transforms():
    out = RandArtefact("bias").set_random_state(0)(_image().numpy())
    assert isinstance(out, torch.Tensor) and out.shape == (1, 32, 32, 4) and out.dtype == torch.float32


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_each_slice_along_the_axis_is_artefix_applied_with_its_recorded_parameters(axis):
    image = _image()
    transform = RandArtefact("bias" if axis == -1 else "noise", axis=axis).set_random_state(0)
    out = transform(image)
    clean = np.moveaxis(image.as_tensor()[0].numpy(), axis % 3, 0)
    corrupted = np.moveaxis(out.as_tensor()[0].numpy(), axis % 3, 0)
    assert len(transform.params) == clean.shape[0] and len(set(transform.params)) == clean.shape[0]
    for i, slice_params in enumerate(transform.params):
        np.testing.assert_array_equal(corrupted[i], compose(clean[i], slice_params, "magnitude"))


def test_the_axis_changes_the_corruption():
    image = _image()
    outs = [RandArtefact("subsampling", severity=2.0, axis=axis).set_random_state(0)(image) for axis in (0, -1)]
    assert not torch.allclose(outs[0], outs[1], atol=1e-3)


def test_set_random_state_decides_the_draws_and_leaves_global_generators_alone():
    image = _image()
    np_state, torch_state = np.random.get_state(), torch.random.get_rng_state()
    first, same, other = (
        Compose([RandArtefactd("image", "motion")]).set_random_state(seed)({"image": image})["image"]
        for seed in (0, 0, 1)
    )
    assert torch.equal(first, same) and not torch.equal(first, other)
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and torch.equal(
        torch.random.get_rng_state(), torch_state
    )


@pytest.mark.parametrize(
    ("artefact", "severity"),
    [
        ("bias", 0.2),
        ("subsampling", None),
        ("motion", 0.125),
        ("periodic-motion", None),
        ("noise", None),
        ("random", None),
        (["noise", "bias"], [5.0, 0.1]),
    ],
)
def test_recorded_parameters_and_randomize_false_replay_exactly(artefact, severity):
    image = _image()
    transform = RandArtefact(artefact, severity=severity).set_random_state(2)
    out = transform(image)
    assert torch.equal(apply_slice_params(image.as_tensor(), transform.params), out.as_tensor())
    assert torch.equal(transform(image, randomize=False), out)
    assert not torch.equal(transform(image), out)


def test_prob_zero_leaves_the_image_unchanged_and_records_nothing():
    image = _image()
    transform = RandArtefactd(["image", "t2"], "motion", prob=0.0).set_random_state(0)
    out = transform({"image": image, "t2": image.numpy()})
    assert torch.equal(out["image"].as_tensor(), image.as_tensor()) and isinstance(out["t2"], torch.Tensor)
    assert torch.equal(torch.as_tensor(out["t2"]), image.as_tensor()) and transform.params == {}


def test_each_key_gets_its_own_draw_and_record():
    image = _image()
    transform = RandArtefactd(["t1", "t2"], "noise", severity=5.0).set_random_state(0)
    out = transform({"t1": image, "t2": image.clone()})
    assert not torch.equal(out["t1"], out["t2"]) and set(transform.params) == {"t1", "t2"}
    assert torch.equal(apply_slice_params(image.as_tensor(), transform.params["t2"]), out["t2"].as_tensor())


def test_a_dataloader_with_two_workers_corrupts_every_item_differently():
    data = [{"image": _image()} for _ in range(4)]  # four copies of one clean volume
    transform = Compose([RandArtefactd("image", "bias")]).set_random_state(0)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        loader = DataLoader(Dataset(data, transform=transform), batch_size=2, num_workers=2)
        runs.append(torch.cat([batch["image"].as_tensor() for batch in loader]))
    images = runs[0]
    assert images.shape == (4, 1, 32, 32, 4)
    assert all(not torch.equal(images[i], images[j]) for i in range(4) for j in range(i))
    assert torch.equal(runs[0], runs[1])  # MONAI seeds each worker's transforms from torch's seed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"artefact": "ghosting"}, "unknown artefact 'ghosting'; choose one of bias"),
        ({"artefact": "noise", "severity": float("inf")}, r"invalid severity inf for 'noise'.*5, 0, -5"),
        ({"artefact": "subsampling", "severity": 5.0, "options": {"mask": "random", "pe_axis": -1}}, "no paper centre"),
        ({"artefact": "motion", "severity": 0.0}, r"invalid severity 0.0 for 'motion'.*0.25, 0.125, 0.05"),
        ({"artefact": "motion", "axis": -4}, "spatial axis"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandArtefactd("image", **kwargs)
