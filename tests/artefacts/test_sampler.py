import json

import numpy as np
import pytest

from artefix.artefacts.base import Artefact, params_to_dict
from artefix.artefacts.sampler import (
    ARTEFACT_NAMES,
    BRAIN_TRAINING,
    PELVIS_TRAINING,
    REGISTRY,
    apply_params,
    check_level_ranges,
    compose,
    get_spec,
    head_of,
    make_params,
    sample_composition,
    sample_training_corruption,
)

SHAPE = (48, 40)


def _image():
    yy, xx = np.mgrid[:48, :40]
    return np.exp(-(((yy - 24) / 12.0) ** 2 + ((xx - 20) / 10.0) ** 2)).astype(np.float32) + 0.1


def test_registry_covers_heads_and_severities():
    assert set(ARTEFACT_NAMES) == {"bias", "subsampling", "motion", "periodic-motion", "noise"}
    assert {spec.head for spec in REGISTRY.values()} == set(Artefact)
    assert get_spec("periodic-motion").head is Artefact.MOTION
    assert REGISTRY["noise"].severities == (5.0, 0.0, -5.0)
    with pytest.raises(ValueError, match="unknown artefact"):
        get_spec("ghosting")


@pytest.mark.parametrize("name", ARTEFACT_NAMES)
def test_every_artefact_round_trips_through_its_params(name):
    rng = np.random.default_rng(0)
    params = make_params(name, rng, SHAPE)
    assert type(params).name == name
    record = params_to_dict(params)
    json.dumps(record)  # loggable
    a = apply_params(_image(), params)
    b = apply_params(_image(), params)
    np.testing.assert_array_equal(a, b)  # replay is exact
    assert a.shape == SHAPE
    assert not np.allclose(np.abs(a), _image(), atol=1e-4)  # the training draw really corrupts


@pytest.mark.parametrize("name", ARTEFACT_NAMES)
def test_every_severity_level_builds(name):
    spec = get_spec(name)
    for level in spec.severities:
        params = make_params(name, np.random.default_rng(1), SHAPE, level)
        assert apply_params(_image(), params).shape == SHAPE


def test_unknown_option_rejected():
    with pytest.raises(ValueError, match="does not take"):
        make_params("noise", np.random.default_rng(0), SHAPE, 0.0, pe_axis=-1)


def test_training_sampler_draws_each_artefact_uniformly():
    rng = np.random.default_rng(3)
    heads = [head_of(sample_training_corruption(rng, (16, 16))) for _ in range(800)]
    counts = np.bincount([h.index for h in heads], minlength=4)
    assert counts.sum() == 800
    assert np.all(np.abs(counts - 200) < 60), counts
    names = {type(sample_training_corruption(rng, (16, 16), PELVIS_TRAINING)).name for _ in range(200)}
    assert names == set(PELVIS_TRAINING)
    assert set(BRAIN_TRAINING) < set(PELVIS_TRAINING)


def test_training_sampler_weights():
    rng = np.random.default_rng(4)
    draws = {type(sample_training_corruption(rng, (16, 16), BRAIN_TRAINING, [0, 0, 0, 1])).name for _ in range(50)}
    assert draws == {"noise"}


def test_composition_order_and_complex_between():
    rng = np.random.default_rng(5)
    params = sample_composition(["subsampling", "motion"], rng, SHAPE, [4, 0.05], random_order=False)
    assert [type(p).name for p in params] == ["subsampling", "motion"]
    out = compose(_image(), params, "complex")
    assert np.iscomplexobj(out)
    manual = apply_params(apply_params(_image(), params[0]), params[1])
    np.testing.assert_array_equal(out, manual)
    orders = {
        tuple(type(p).name for p in sample_composition(["noise", "bias"], rng, SHAPE, [0, 0.1])) for _ in range(40)
    }
    assert orders == {("noise", "bias"), ("bias", "noise")}
    with pytest.raises(ValueError, match="severities"):
        sample_composition(["noise", "bias"], rng, SHAPE, [0])
    with pytest.raises(ValueError, match="got 3 severities for 2 artefacts"):
        sample_composition(["noise", "bias"], rng, SHAPE, [0, 0.1, 0.2])


def test_severity_fraction_mixes_in_the_evaluation_families():
    shape = (32, 32)
    plain = [sample_training_corruption(np.random.default_rng(k), shape) for k in range(30)]
    zero = [sample_training_corruption(np.random.default_rng(k), shape, severity_fraction=0.0) for k in range(30)]
    assert plain == zero  # q = 0 is the paper's distribution, draw for draw
    rng = np.random.default_rng(5)
    for _ in range(60):
        params = sample_training_corruption(rng, shape, ("bias", "subsampling", "noise"), severity_fraction=1.0)
        name = type(params).name
        lo, hi = get_spec(name).level_range
        if name == "bias":
            assert 2 * lo <= params.field_range <= 2 * hi
        elif name == "subsampling":
            assert params.kind == "centred" and 1 / hi <= params.center_fraction <= 1 / lo
        else:
            assert lo <= params.snr_db <= hi
    mixed = [sample_training_corruption(rng, shape, ("subsampling",), severity_fraction=0.5) for _ in range(200)]
    paper = sum(p.center_fraction in (0.16, 0.12, 0.08, 0.04) for p in mixed)
    assert 60 < paper < 140  # about half from each family
    with pytest.raises(ValueError, match="severity_fraction"):
        sample_training_corruption(rng, shape, severity_fraction=1.5)
    with pytest.raises(ValueError, match="severity_fraction"):
        sample_training_corruption(rng, shape, severity_fraction=-0.5)


def test_level_ranges_replace_the_evaluation_family_range_of_one_artefact():
    shape = (32, 32)
    rng = np.random.default_rng(3)
    ranges = {"noise": (-10.0, 10.0)}
    drawn = [
        sample_training_corruption(rng, shape, ("noise", "bias"), severity_fraction=1.0, level_ranges=ranges)
        for _ in range(200)
    ]
    snrs = [p.snr_db for p in drawn if type(p).name == "noise"]
    assert len(snrs) > 50 and max(snrs) <= 10.0 and min(snrs) >= -10.0
    assert max(snrs) > 8.0  # the whole new range is used
    lo, hi = get_spec("bias").level_range
    assert all(2 * lo <= p.field_range <= 2 * hi for p in drawn if type(p).name == "bias")  # others untouched
    same = [sample_training_corruption(np.random.default_rng(k), shape, level_ranges={}) for k in range(20)]
    assert same == [sample_training_corruption(np.random.default_rng(k), shape) for k in range(20)]


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"nois": (0, 1)}, "unknown artefact"),
        ({"noise": (5, 1)}, "low <= high"),
        ({"noise": (1,)}, "two finite"),
        ({"noise": (0, 1, 2)}, "two finite"),
        ({"bias": (0.1, 1.5)}, "bias severity level must be in"),  # refused when read, not mid-epoch
    ],
)
def test_level_ranges_are_validated(ranges, message):
    with pytest.raises(ValueError, match=message):
        check_level_ranges(ranges)
    with pytest.raises(ValueError, match=message):
        sample_training_corruption(np.random.default_rng(0), (32, 32), severity_fraction=1.0, level_ranges=ranges)


def test_registry_entries_are_frozen_and_hold_the_paper_levels():
    import dataclasses

    from artefix.artefacts.sampler import get_spec

    spec = get_spec("noise")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.severities = (1.0,)
    paper = {"bias": (0.05, 0.1, 0.2), "subsampling": (2.0, 3.0, 4.0), "motion": (0.25, 0.125, 0.05)}
    paper["noise"] = (5.0, 0.0, -5.0)  # PAPER_SPEC "Evaluation severities"
    for name, levels in paper.items():
        assert get_spec(name).severities == levels


def test_level_ranges_refuse_non_numbers_in_one_line_and_accept_a_single_level():
    from artefix.artefacts.sampler import check_level_ranges

    with pytest.raises(ValueError, match="two finite numbers"):
        check_level_ranges({"noise": ("low", 5.0)})
    with pytest.raises(ValueError, match="two finite numbers"):
        check_level_ranges({"noise": (float("nan"), 5.0)})
    assert check_level_ranges({"noise": (3.0, 3.0)}) == {"noise": (3.0, 3.0)}  # low == high: one fixed level


def test_sample_composition_takes_the_severities_by_keyword():
    from artefix.artefacts.sampler import sample_composition

    rng = np.random.default_rng(0)
    params = sample_composition(["noise", "bias"], rng, (16, 16), severities=[0.0, 0.1], random_order=False)
    assert [p.name for p in params] == ["noise", "bias"] and params[0].snr_db == 0.0


def test_every_shipped_level_range_is_one_its_artefact_accepts():
    ranges = {name: spec.level_range for name, spec in REGISTRY.items() if spec.level_range is not None}
    assert set(ranges) == set(REGISTRY)  # every artefact has an evaluation family for severity_fraction
    assert check_level_ranges(ranges) == ranges
    for name, (low, high) in ranges.items():  # mild to severe: each range reaches the evaluation levels
        assert low <= min(REGISTRY[name].severities) and high >= max(REGISTRY[name].severities)


def test_severity_fraction_zero_draws_the_paper_sampler_stream_untouched():
    # q = 0 is the paper: after the artefact choice the training sampler reads the very next numbers, so
    # runs that do not use the evaluation families keep the draws (and the replays) they always had
    for seed in range(5):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        got = [sample_training_corruption(rng, (32, 32), ("noise",), severity_fraction=0.0) for _ in range(3)]
        expected = []
        for _ in range(3):
            ref.choice(1)  # the artefact choice among one
            expected.append(get_spec("noise").sample(ref, (32, 32)))
        assert got == expected


def test_weights_need_not_sum_to_one():
    rng = np.random.default_rng(0)
    names = [params_to_dict(sample_training_corruption(rng, (16, 16), ("noise", "bias"), weights=(1, 3)))["artefact"]
             for _ in range(400)]  # fmt: skip
    assert names.count("noise") == pytest.approx(100, abs=30)  # 1 : 3 (SD 9; 1 : 1 gives 200)
