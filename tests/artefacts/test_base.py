"""The shared helpers of every artefact (``artefix.artefacts.base``): seeds, shapes, outputs, normalisation.

Several of these tests were written to kill mutants that survived the mutation check (docs/mutation.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import numpy as np
import pytest
import torch

from artefix.artefacts.base import (
    check_image,
    draw_seed,
    params_to_dict,
    stable_entropy,
    to_output,
    torch_generator,
    znorm,
)


@pytest.mark.parametrize("words", [1, 4, 8])
def test_stable_entropy_is_the_little_endian_words_of_the_sha256(words):
    digest = hashlib.sha256(b"artefix/slice 7").digest()
    assert stable_entropy("artefix/slice 7", words) == list(struct.unpack(f"<{words}I", digest[: 4 * words]))


def test_torch_generator_reduces_the_seed_modulo_2_63_minus_1():
    def stream(seed):
        return torch.rand(4, generator=torch_generator(seed))

    assert torch.equal(stream(2**63 - 1), stream(0))  # the largest seed wraps to 0
    assert torch.equal(stream(2**63 + 4), stream(5))
    assert not torch.equal(stream(2**62 - 1), stream(0))  # large seeds below the modulus stay distinct


@pytest.mark.parametrize("shape", [(1, 5), (5, 1), (3, 1, 5), (3, 5, 1)])
def test_check_image_refuses_an_image_thinner_than_2_pixels(shape):
    with pytest.raises(ValueError, match="at least 2x2"):
        check_image(np.zeros(shape))
    check_image(np.zeros((2, 2)))
    check_image(np.zeros((3, 2, 2)))


@pytest.mark.parametrize("name", ["phase", "imag", "Real", "", "unknown", "abs"])
def test_to_output_refuses_any_other_name(name):
    # names that sort before "real" too: the check is equality, not order
    with pytest.raises(ValueError, match="output must be"):
        to_output(np.ones((2, 2), complex), name)


def test_draw_seed_spans_the_whole_63_bit_range():
    seeds = [draw_seed(np.random.default_rng(k)) for k in range(64)]
    assert all(0 <= s < 2**63 - 1 for s in seeds)
    assert max(seeds) >= 2**62  # half of the range lies above 2**62: 64 draws all below it has odds 2**-64


def test_to_output_compares_names_by_value_not_identity():
    x = np.array([[3 + 4j, -1j]])
    name = "".join(["magni", "tude"])  # equal to "magnitude" but another object
    np.testing.assert_array_equal(to_output(x, name), [[5.0, 1.0]])
    np.testing.assert_array_equal(to_output(x, "".join(["re", "al"])), [[3.0, 0.0]])
    np.testing.assert_array_equal(to_output(x, "".join(["com", "plex"])), x)


def test_stable_entropy_gives_four_words_by_default():
    # the default seeds every slice's corruption: changing it would change every replayed corruption
    assert stable_entropy("artefix/slice 7") == stable_entropy("artefix/slice 7", 4)


@pytest.mark.parametrize("shape", [(3, 6, 5), (2, 1, 6, 5)])
def test_znorm_normalises_each_slice_of_a_stack_alike_in_numpy_and_torch(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) * np.arange(1, shape[0] + 1).reshape(-1, *([1] * (len(shape) - 1))) + 7.0
    a = znorm(x)
    b = znorm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(b, a, atol=1e-12)
    np.testing.assert_allclose(a.mean(axis=(-2, -1)), 0.0, atol=1e-12)
    np.testing.assert_allclose(a.std(axis=(-2, -1)), 1.0, atol=1e-12)
    for k in range(shape[0]):  # each slice alone: the same result
        np.testing.assert_allclose(a[k], znorm(x[k]), atol=1e-12)
    assert not np.any(znorm(np.full((2, 4, 4), 3.0)))  # a constant slice maps to zeros


def test_params_to_dict_keeps_every_field_and_names_the_artefact():
    @dataclasses.dataclass(frozen=True)
    class P:
        name = "demo"
        level: float = 0.5
        axes: tuple[int, ...] = (1, 2)

    assert params_to_dict(P()) == {"level": 0.5, "axes": [1, 2], "artefact": "demo"}
