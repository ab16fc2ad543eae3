"""Slice-wise corruption shared by the TorchIO and MONAI transforms (needs neither library)."""

import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import artefix
from artefix.artefacts.sampler import compose
from artefix.integrations.common import (
    apply_slice_params,
    check_artefact,
    corrupt_slices,
    draw_slice_params,
    slice_layout,
)


def _volume(shape=(1, 32, 32, 4), seed=0):
    rng = np.random.default_rng(seed)
    x, y = np.mgrid[: shape[1], : shape[2]]
    blob = np.exp(-(((x - shape[1] / 2) / 9.0) ** 2 + ((y - shape[2] / 2) / 7.0) ** 2))
    blob = blob.reshape(1, shape[1], shape[2], *([1] * (len(shape) - 3)))
    return (blob + 0.1 * rng.random(shape)).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_the_draws_are_artefix_simulate_on_the_slices_with_the_same_seed(axis):
    volume = _volume((1, 12, 10, 6))
    out, params = corrupt_slices(volume, "bias", seed=7, axis=axis)
    dim = 1 + axis % 3
    stack = np.moveaxis(volume[0], dim - 1, 0)
    expected = artefix.simulate(stack, "bias", seed=7)
    np.testing.assert_array_equal(np.moveaxis(out[0], dim - 1, 0), expected)
    assert len(params) == volume.shape[dim] and all(len(p) == 1 for p in params)
    assert len({p[0] for p in params}) == len(params)  # every slice its own draw


def test_2d_channels_are_slices_and_the_parameters_replay_exactly():
    image = _volume((3, 32, 24))
    out, params = corrupt_slices(image, "motion", seed=1, axis=0)  # axis is ignored in 2D
    assert out.shape == image.shape and out.dtype == image.dtype and len(params) == 3
    for c in range(3):
        np.testing.assert_array_equal(out[c], compose(image[c], params[c], "magnitude"))
    np.testing.assert_array_equal(apply_slice_params(torch.from_numpy(image), params).numpy(), out)


def test_integer_and_float64_data_keep_their_dtype():
    ints = (_volume() * 1000).astype(np.int16)
    out, _ = corrupt_slices(ints, "noise", severity=5.0, seed=0)
    assert out.dtype == np.int16 and not np.array_equal(out, ints)
    out64, _ = corrupt_slices(torch.from_numpy(_volume().astype(np.float64)), "bias", seed=0)
    assert out64.dtype == torch.float64


def test_layout_and_replay_errors_are_clear():
    assert slice_layout((2, 32, 30, 4), axis=0) == (64, (30, 4))
    assert slice_layout((2, 32, 30), axis=0) == (2, (32, 30))
    with pytest.raises(ValueError, match="at least 2x2"):
        slice_layout((1, 32, 32, 1), axis=0)
    with pytest.raises(ValueError, match="spatial axis"):
        slice_layout((1, 32, 32, 4), axis=3)
    params = draw_slice_params("noise", None, 0, (1, 32, 32, 4))
    with pytest.raises(ValueError, match="hold 4 slices; this image has 32"):
        apply_slice_params(_volume(), params, axis=0)


@pytest.mark.parametrize(
    ("artefact", "severity", "options", "match"),
    [
        ("blur", None, None, "unknown artefact 'blur'; choose one of bias, subsampling, motion"),
        (["noise", "blur"], None, None, "unknown artefact 'blur'"),
        ("bias", 3.0, None, r"invalid severity 3.0 for 'bias'.*the paper's levels: 0.05, 0.1, 0.2"),
        ("noise", float("nan"), None, r"invalid severity nan for 'noise'.*5, 0, -5"),
        ("subsampling", 0.5, None, r"invalid severity 0.5 for 'subsampling'.*2, 3, 4"),
        ("motion", 1.0, None, r"invalid severity 1.0 for 'motion'.*0.25, 0.125, 0.05"),
        ("bias", None, {"pe_axis": -1}, "does not take option"),
        ("random", 0.1, None, "takes no severity"),
        (["noise", "bias"], [0.0], None, "one level per artefact"),
        (3, None, None, "artefact must be a name"),
    ],
)
def test_bad_artefacts_and_severities_name_the_valid_ones(artefact, severity, options, match):
    with pytest.raises(ValueError, match=match):
        check_artefact(artefact, severity, options)


def test_the_package_imports_neither_library():
    code = (
        "import sys, artefix.integrations, artefix.integrations.common; "
        "assert 'torchio' not in sys.modules and 'monai' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("library", ["torchio", "monai"])
def test_a_missing_library_names_its_extra(monkeypatch, library):
    for name in [library, *(m for m in sys.modules if m.startswith(f"{library}."))]:
        monkeypatch.setitem(sys.modules, name, None)  # what an import meets where the library is not installed
    monkeypatch.delitem(sys.modules, f"artefix.integrations.{library}", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'artefix\[{library}\]'"):
        importlib.import_module(f"artefix.integrations.{library}")
