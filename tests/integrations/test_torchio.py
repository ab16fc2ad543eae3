"""artefix.integrations.torchio with the real TorchIO: shapes, slices, seeding, history replay, loaders."""

import importlib
import os

import numpy as np
import pytest
import torch

from artefix.artefacts.sampler import compose


def require_extra(module: str):
    """Import an optional library: skip where it is absent, fail where ``ARTEFIX_REQUIRE_SHARED_DATA=1`` (CI)."""
    if os.environ.get("ARTEFIX_REQUIRE_SHARED_DATA") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"pip install 'artefix[{module}]'")


tio = require_extra("torchio")
from artefix.integrations.torchio import ApplyArtefact, RandomArtefact  # noqa: E402

AFFINE = np.array([[0.0, 0.9, 0, 10], [1.2, 0, 0, -5], [0, 0, 3.0, 2], [0, 0, 0, 1]])


def _tensor(shape=(1, 32, 32, 4), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-1, 1, shape[1])[:, None, None]
    y = torch.linspace(-1, 1, shape[2])[None, :, None]
    blob = torch.exp(-(x**2 + y**2) * 3).expand(shape[1:])
    return (blob + 0.1 * torch.rand(shape, generator=g)).to(dtype)


def _subject(shape=(1, 32, 32, 4), dtype=torch.float32):
    return tio.Subject(
        t1=tio.ScalarImage(tensor=_tensor(shape, dtype=dtype), affine=AFFINE),
        seg=tio.LabelMap(tensor=(_tensor(shape[:1] + shape[1:]) > 0.5).to(torch.uint8), affine=AFFINE),
    )


def _recorded(subject, image="t1", index=-1):
    transform = subject.get_applied_transforms()[index]
    assert isinstance(transform, ApplyArtefact)
    return transform.params[image]


@pytest.mark.parametrize("shape", [(1, 32, 32, 1), (1, 32, 32, 4), (2, 24, 32, 3)], ids=["2d", "3d", "3d-2ch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16])
def test_shape_dtype_affine_and_label_maps_are_kept(shape, dtype):
    subject = _subject(shape, dtype)
    if dtype == torch.int16:
        subject.t1.set_data((subject.t1.data.float() * 1000).to(dtype))
    out = RandomArtefact("noise", severity=0.0)(subject)
    assert out.t1.data.shape == shape and out.t1.data.dtype == dtype
    np.testing.assert_array_equal(out.t1.affine, AFFINE)
    assert torch.equal(out.seg.data, subject.seg.data)
    assert not torch.equal(out.t1.data, subject.t1.data)
    n_slices = shape[0] * shape[3]
    assert len(_recorded(out)) == n_slices


def test_a_2d_image_is_one_slice_whatever_the_axis():
    subject = _subject((1, 32, 32, 1))
    torch.manual_seed(3)
    along0 = RandomArtefact("motion", axis=0)(subject)
    torch.manual_seed(3)
    along2 = RandomArtefact("motion", axis=2)(subject)
    assert torch.equal(along0.t1.data, along2.t1.data)
    np.testing.assert_array_equal(
        along0.t1.data[0, :, :, 0].numpy(),
        compose(subject.t1.data[0, :, :, 0].numpy(), _recorded(along0)[0], "magnitude"),
    )


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_each_slice_along_the_axis_is_artefix_applied_with_its_recorded_parameters(axis):
    subject = _subject()
    torch.manual_seed(0)
    out = RandomArtefact("bias" if axis == -1 else "noise", axis=axis)(subject)
    params = _recorded(out)
    clean = np.moveaxis(subject.t1.data[0].numpy(), axis % 3, 0)
    corrupted = np.moveaxis(out.t1.data[0].numpy(), axis % 3, 0)
    assert len(params) == clean.shape[0] and len(set(params)) == len(params)  # one draw per slice
    for i, slice_params in enumerate(params):
        np.testing.assert_array_equal(corrupted[i], compose(clean[i], slice_params, "magnitude"))


def test_the_axis_changes_the_corruption():
    subject = _subject()
    outs = []
    for axis in (0, -1):
        torch.manual_seed(0)
        outs.append(RandomArtefact("subsampling", severity=2.0, axis=axis)(subject).t1.data)
    assert not torch.allclose(outs[0], outs[1], atol=1e-3)


@pytest.mark.parametrize(
    ("artefact", "severity"),
    [
        ("bias", None),
        ("subsampling", 4.0),
        ("motion", None),
        ("periodic-motion", 20.0),
        ("noise", -5.0),
        ("random", None),
        (("subsampling", "motion"), (3.0, 0.05)),
    ],
)
def test_every_artefact_replays_from_the_history(artefact, severity):
    subject = _subject()
    out = RandomArtefact(artefact, severity=severity)(subject)
    assert not torch.equal(out.t1.data, subject.t1.data)
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.t1.data, out.t1.data)


def test_torch_seed_decides_the_draws_and_leaves_numpy_alone():
    subject = _subject()
    transform = RandomArtefact("motion")
    state = np.random.get_state()
    runs = {}
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.setdefault(seed, []).append(transform(subject).t1.data)
    assert torch.equal(runs[0][0], runs[0][1])
    assert not torch.equal(runs[0][0], runs[1][0])
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


def test_compose_history_replays_the_whole_pipeline_exactly():
    subject = _subject()
    pipeline = tio.Compose(
        [
            tio.RandomFlip(axes=(0,), flip_probability=1.0),
            RandomArtefact("motion"),
            RandomArtefact("noise", severity=5.0),
        ]
    )
    torch.manual_seed(11)
    out = pipeline(subject)
    names = [t.name for t in out.get_applied_transforms()]
    assert names == ["Flip", "ApplyArtefact", "ApplyArtefact"]
    assert "4 slices of motion" in repr(out.history[1])
    assert torch.equal(out.get_composed_history()(subject).t1.data, out.t1.data)
    assert torch.equal(out.seg.data, torch.flip(subject.seg.data, dims=(1,)))


def test_probability_and_include_are_torchio_arguments():
    subject = _subject()
    subject.add_image(tio.ScalarImage(tensor=_tensor(seed=1), affine=AFFINE), "t2")
    assert torch.equal(RandomArtefact("noise", p=0.0)(subject).t1.data, subject.t1.data)
    out = RandomArtefact("noise", include=["t2"])(subject)
    assert torch.equal(out.t1.data, subject.t1.data) and not torch.equal(out.t2.data, subject.t2.data)
    both = RandomArtefact("noise")(subject)
    assert set(out.history[0].params) == {"t2"} and set(both.history[0].params) == {"t1", "t2"}


def test_a_loader_with_two_workers_corrupts_every_item_differently():
    subjects = [_subject() for _ in range(4)]  # four copies of one clean volume
    dataset = tio.SubjectsDataset(subjects, transform=tio.Compose([RandomArtefact("bias")]))
    loader_class = getattr(tio, "SubjectsLoader", torch.utils.data.DataLoader)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        loader = loader_class(dataset, batch_size=2, num_workers=2)
        runs.append(torch.cat([batch["t1"][tio.DATA] for batch in loader]))
    images = runs[0]
    assert images.shape == (4, 1, 32, 32, 4)
    assert all(not torch.equal(images[i], images[j]) for i in range(4) for j in range(i))
    assert torch.equal(runs[0], runs[1])  # the workers' seeds come from torch's seed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"artefact": "ghosting"}, "unknown artefact 'ghosting'; choose one of bias"),
        ({"artefact": "noise", "severity": "high"}, "one level per artefact"),
        ({"artefact": "bias", "severity": 0.0}, r"invalid severity 0.0 for 'bias'.*0.05, 0.1, 0.2"),
        ({"artefact": "motion", "axis": 3}, "spatial axis"),
        ({"artefact": "noise", "output": "complex"}, "magnitude' or 'real'"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomArtefact(**kwargs)
