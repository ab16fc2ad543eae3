import re

import numpy as np
import pytest
import torch

from artefix.artefacts.base import Artefact, znorm
from artefix.fft import fft2c, ifft2c
from artefix.models import (
    ALL_HEADS,
    DualDomainModel,
    ModelConfig,
    ModelOutput,
    apply_residuals,
    build_model,
    head_weights,
)
from artefix.models.policy import InferencePolicy

ATOL = 1e-5


def _record_input(store):
    def hook(module, inputs, output):
        store["in"] = inputs[0]

    return hook


def _x(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return znorm(torch.randn(shape, generator=g))


@pytest.fixture(scope="module")
def tiny():
    return build_model("tiny", seed=0).eval()


@pytest.mark.parametrize("preset", ["tiny", "compact"])
@pytest.mark.parametrize("shape", [(1, 1, 33, 47), (3, 1, 20, 17), (3, 1, 32, 64), (1, 1, 5, 7)])
def test_output_shapes_any_size_and_batch(preset, shape):
    model = build_model(preset, seed=1).eval()
    with torch.no_grad():
        out = model(_x(shape))
    assert isinstance(out, ModelOutput)
    assert out.output.shape == shape
    assert out.residuals.shape == (shape[0], 4, *shape[2:])
    assert torch.isfinite(out.output).all() and torch.isfinite(out.residuals).all()
    # Z-normalised output: zero mean and unit (population) std per slice
    torch.testing.assert_close(out.output.mean(dim=(-2, -1)), torch.zeros(shape[0], 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.output.std(dim=(-2, -1), unbiased=False), torch.ones(shape[0], 1), atol=1e-4, rtol=0)


def test_forward_is_znorm_of_input_plus_sum_of_residuals(tiny):
    x = _x((2, 1, 24, 30))
    with torch.no_grad():
        out = tiny(x)
    torch.testing.assert_close(out.output, znorm(x + out.residuals.sum(1, keepdim=True)), atol=ATOL, rtol=0)


def test_disabling_all_heads_gives_znorm_of_input(tiny):
    x = 3.0 * _x((2, 1, 21, 18)) + 5.0  # not normalised: the output layer normalises
    with torch.no_grad():
        out = tiny(x, heads=[False] * 4)
        names = tiny(x, heads=[])
    torch.testing.assert_close(out.output, znorm(x), atol=ATOL, rtol=0)
    torch.testing.assert_close(names.output, znorm(x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("k", range(4))
def test_disabling_one_head_removes_exactly_that_residual(tiny, k):
    x = _x((2, 1, 24, 24), seed=k)
    mask = torch.ones(4)
    mask[k] = 0
    with torch.no_grad():
        full = tiny(x)
        part = tiny(x, heads=mask)
    # residuals are returned unmasked, and the selection does not change them
    torch.testing.assert_close(part.residuals, full.residuals, atol=0, rtol=0)
    before_all = apply_residuals(x, full.residuals, None, normalize=False)
    before_part = apply_residuals(x, full.residuals, mask, normalize=False)
    torch.testing.assert_close(before_all - before_part, full.residuals[:, k : k + 1], atol=1e-6, rtol=0)
    expected = znorm(x + full.residuals.sum(1, keepdim=True) - full.residuals[:, k : k + 1])
    torch.testing.assert_close(part.output, expected, atol=ATOL, rtol=0)


def test_head_selection_forms_agree(tiny):
    x = _x((2, 1, 16, 20))
    with torch.no_grad():
        ref = tiny(x, heads=torch.tensor([1, 0, 1, 1])).output
        for sel in (
            [True, False, True, True],
            [1, 0, 1, 1],
            ["bias", "motion", "noise"],
            ["noise", Artefact.BIAS, "motion"],
            torch.tensor([[1, 0, 1, 1], [1, 0, 1, 1]], dtype=torch.bool),
        ):
            torch.testing.assert_close(tiny(x, heads=sel).output, ref, atol=0, rtol=0)


def test_per_sample_head_selection(tiny):
    x = _x((2, 1, 16, 16))
    with torch.no_grad():
        both = tiny(x, heads=torch.tensor([[1.0, 1, 1, 1], [0, 0, 0, 0]]))
        full = tiny(x)
    torch.testing.assert_close(both.output[0], full.output[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(both.output[1], znorm(x[1]), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("heads", "match"),
    [
        ([1, 0, 1], "expected 4 head flags"),
        (["blur"], r"not in this model's heads"),
        (["bias", 1], "all names or all"),
        (torch.ones(3), r"shape \(K,\) or \(B, K\)"),
    ],
)
def test_bad_head_selection_raises(heads, match):
    with pytest.raises(ValueError, match=match):
        head_weights(heads, ALL_HEADS)


def test_single_task_model_has_one_head_and_rejects_others():
    model = build_model("tiny", heads=("motion",), seed=0).eval()
    assert model.head_names == ("motion",)
    x = _x((1, 1, 12, 12))
    with torch.no_grad():
        out = model(x)
    assert out.residuals.shape == (1, 1, 12, 12)
    assert model.image_branch.head.out_channels == 1 and model.kspace_branch.head.out_channels == 2
    with pytest.raises(ValueError, match="not in this model's heads"):
        model(x, heads=["noise"])


def test_kspace_branch_sees_real_and_imaginary_kspace(tiny):
    x = _x((2, 1, 16, 20))  # multiple of the stride 4: no padding
    seen = {}
    handle = tiny.kspace_branch.register_forward_hook(_record_input(seen))
    try:
        with torch.no_grad():
            tiny(x)
    finally:
        handle.remove()
    k = fft2c(x[:, 0])
    torch.testing.assert_close(seen["in"], torch.stack([k.real, k.imag], dim=1), atol=1e-6, rtol=0)


def test_kspace_branch_output_goes_through_inverse_fourier_transform():
    model = build_model("tiny", branches=("kspace",), seed=0).eval()
    x = _x((1, 1, 8, 12))
    y = torch.randn(1, 8, 8, 12, generator=torch.Generator().manual_seed(5))
    handle = model.kspace_branch.register_forward_hook(lambda m, inp, out: y)
    try:
        with torch.no_grad():
            res = model(x).residuals
    finally:
        handle.remove()
    # head i reads channels (2i, 2i+1) as real and imaginary k-space; residual = Re(ifft2c(.))
    expected = ifft2c(torch.complex(y[:, 0::2], y[:, 1::2])).real
    torch.testing.assert_close(res, expected, atol=1e-6, rtol=0)
    # a k-space delta at DC is a constant image 1/sqrt(HW) (orthonormal transform)
    y = torch.zeros(1, 8, 8, 12)
    y[0, 0, 4, 6] = 1.0
    handle = model.kspace_branch.register_forward_hook(lambda m, inp, out: y)
    try:
        with torch.no_grad():
            res = model(x).residuals
    finally:
        handle.remove()
    torch.testing.assert_close(res[0, 0], torch.full((8, 12), 1 / np.sqrt(96)), atol=1e-6, rtol=0)


def test_branch_residuals_are_summed():
    both = build_model("tiny", seed=3).eval()
    image = build_model("tiny", branches=("image",)).eval()
    kspace = build_model("tiny", branches=("kspace",)).eval()
    state = both.state_dict()
    image.load_state_dict({k: v for k, v in state.items() if k.startswith("image_branch.")})
    kspace.load_state_dict({k: v for k, v in state.items() if k.startswith("kspace_branch.")})
    x = _x((2, 1, 19, 22))
    with torch.no_grad():
        total = both.residuals(x)
        parts = image.residuals(x) + kspace.residuals(x)
    torch.testing.assert_close(total, parts, atol=1e-5, rtol=0)


def test_padding_is_centred_and_cropped_back():
    model = build_model("tiny", branches=("image",), seed=0).eval()
    seen = {}
    handle = model.image_branch.register_forward_hook(_record_input(seen))
    x = _x((1, 1, 13, 10))
    try:
        with torch.no_grad():
            res = model(x).residuals
    finally:
        handle.remove()
    padded = seen["in"]
    assert padded.shape == (1, 1, 16, 12)  # next multiples of the stride 4
    torch.testing.assert_close(padded[..., 1:14, 1:11], x, atol=0, rtol=0)  # 3 rows: 1 top, 2 bottom
    assert padded[..., 0, :].abs().max() == 0 and padded[..., 14:, :].abs().max() == 0
    assert res.shape == (1, 4, 13, 10)


@pytest.mark.parametrize("pad_mode", ["reflect", "replicate"])
def test_other_pad_modes(pad_mode):
    model = build_model("tiny", pad_mode=pad_mode, seed=0).eval()
    with torch.no_grad():
        assert model(_x((1, 1, 9, 11))).output.shape == (1, 1, 9, 11)
    small = build_model("compact", pad_mode=pad_mode).eval()  # stride 32
    if pad_mode == "reflect":
        with pytest.raises(ValueError, match="reflect"):
            small(_x((1, 1, 5, 7)))
    else:
        assert small(_x((1, 1, 5, 7))).output.shape == (1, 1, 5, 7)


def test_input_shape_is_checked(tiny):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        tiny(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        tiny(torch.zeros(8, 8))


def test_gradients_reach_both_branches():
    model = build_model("tiny", seed=0).train()
    x, target = _x((3, 1, 16, 16), seed=1), _x((3, 1, 16, 16), seed=2)
    out = model(x)
    loss = torch.nn.functional.mse_loss(out.output, target) + 0.1 * out.residuals.pow(2).mean()
    loss.backward()
    for branch in (model.image_branch, model.kspace_branch):
        for name in ("stem.0.weight", "down.0.0.weight", "up.1.block.0.weight", "head.weight"):
            grad = branch.get_parameter(name).grad
            assert grad is not None and grad.abs().sum() > 0, name


def test_eval_mode_is_deterministic_and_batch_independent(tiny):
    x = _x((3, 1, 20, 20))
    with torch.no_grad():
        a, b = tiny(x), tiny(x)
        single = tiny(x[1:2])
    assert torch.equal(a.output, b.output) and torch.equal(a.residuals, b.residuals)
    torch.testing.assert_close(single.residuals, a.residuals[1:2], atol=1e-5, rtol=1e-5)


def test_seeded_initialisation_is_reproducible_whatever_the_global_rng_state():
    a = build_model("tiny", seed=7)
    torch.rand(100)  # move the global RNG on: the seeded initialisation must not depend on it
    b = DualDomainModel(ModelConfig(base_width=4, depth=2), seed=7)
    c = build_model("tiny", seed=8)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.image_branch.stem[0].weight, c.image_branch.stem[0].weight)
    # the default PyTorch scale: kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = a.image_branch.down[0][0].weight  # fan_in = 4 channels * 9
    assert w.abs().max() <= 1 / 6 and w.abs().max() > 0.8 / 6


@pytest.mark.parametrize("k", range(8))
def test_dihedral_transforms_are_undone_exactly(k):
    from artefix.models.dual_domain import dihedral, undo_dihedral

    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 1, 3, 5)
    y = dihedral(x, k)
    assert y.shape[-2:] == ((5, 3) if k >= 4 else (3, 5))
    torch.testing.assert_close(undo_dihedral(y, k), x, rtol=0, atol=0)
    assert len({tuple(dihedral(x[0, 0], j).flatten().tolist()) for j in range(8)}) == 8  # eight distinct maps


def _gated(seed=2, **policy):
    from artefix.models.presets import PRESETS

    return DualDomainModel(PRESETS["tiny"].replace(gates=True), seed=seed, policy=InferencePolicy(**policy)).eval()


@pytest.mark.parametrize("shape", [(2, 1, 24, 24), (1, 1, 19, 30)])
def test_self_ensemble_is_the_mean_of_the_transformed_passes_and_equivariant(shape):
    from artefix.models.dual_domain import dihedral, undo_dihedral

    model = _gated()
    x = _x(shape, seed=3)
    with torch.no_grad():
        plain = model.residuals(x)
        passes = [undo_dihedral(model.residuals(dihedral(x, k)), k) for k in range(8)]
        eight = model.policy.replace(ensemble=8)
        mean = model.residuals(x, policy=eight)
        torch.testing.assert_close(mean, sum(passes) / 8, rtol=0, atol=1e-5)
        assert not torch.allclose(mean, plain, atol=1e-4)
        # averaging over the whole group makes the model commute with every transform of it
        for k in range(8):
            torch.testing.assert_close(
                model.residuals(dihedral(x, k), policy=eight), dihedral(mean, k), atol=1e-5, rtol=0
            )
            torch.testing.assert_close(
                model.detect(dihedral(x, k), policy=eight), model.detect(x, policy=eight), rtol=0, atol=1e-6
            )
        out = model(x, policy=eight)
        torch.testing.assert_close(out.residuals, mean, rtol=0, atol=0)
        torch.testing.assert_close(out.scores, model.detect(x, policy=eight), rtol=0, atol=0)  # the same pass
        torch.testing.assert_close(model.residuals(x), plain, rtol=0, atol=0)  # the model's own policy is unchanged


def test_self_ensemble_only_at_inference_and_validated():
    model = _gated(ensemble=4)
    assert model.policy.ensemble == 4 and model.acting_policy().ensemble == 4
    model.train()
    assert model.acting_policy().ensemble == 1  # training always sees single passes
    x = _x((2, 1, 16, 16), seed=4)
    calls = []
    handle = model.image_branch.register_forward_hook(lambda *a: calls.append(1))
    model(x)
    assert len(calls) == 1
    model.eval()
    with torch.no_grad():
        model(x)
    assert len(calls) == 1 + 4
    handle.remove()
    assert InferencePolicy.from_dict(model.policy.to_dict()) == model.policy
    assert InferencePolicy.from_dict({}).ensemble == 1  # cards written before the option
    for bad in (3, 0, True, 2.0, "8"):
        with pytest.raises(ValueError, match="ensemble"):
            InferencePolicy(ensemble=bad)


def test_self_ensemble_keeps_data_consistency_exact():
    from artefix.artefacts.subsampling import centre_crop_kspace_image

    policy = InferencePolicy(consistency=True, ensemble=8)
    model = DualDomainModel(ModelConfig(base_width=4, depth=2, convs_per_block=1), seed=1, policy=policy)
    model.eval()
    rng = np.random.default_rng(0)
    clean = rng.random((40, 40)) + 2.0
    low = np.abs(centre_crop_kspace_image(clean, 2.0))
    up = torch.fft.ifft2(
        torch.fft.ifftshift(
            torch.nn.functional.pad(torch.fft.fftshift(torch.fft.fft2(torch.from_numpy(low))), (10, 10, 10, 10))
        )
    ).real
    x = znorm(up.float())[None, None]
    with torch.no_grad():
        p = model.residuals(x)[:, ALL_HEADS.index("subsampling")]
    k = fft2c(p[0].double())
    centre = k[10:30, 10:30]
    assert float(centre.abs().max()) < 1e-4 * float(k.abs().max())  # the measured lines are left alone


def _noisy_and_clean(h=48, w=40):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    clean = ((yy / 0.8) ** 2 + (xx / 0.7) ** 2 < 1).float() * (1 + 0.2 * torch.cos(3 * xx))
    noisy = clean + 0.5 * torch.randn((h, w), generator=torch.Generator().manual_seed(0))
    return znorm(torch.stack([clean, noisy]))[:, None]


def test_physics_priors_apply_in_eval_mode_only():
    from artefix.models.priors import estimated_snr_db, smooth_bias_residual, snr_gate

    model = _gated(bias_smooth=0.1, noise_snr=(9.0, 12.0))
    x = _noisy_and_clean()
    plain = DualDomainModel(model.config, policy=model.policy.without_priors())
    plain.load_state_dict(model.state_dict())
    assert plain.policy.bias_smooth == 0.0 and plain.policy.noise_snr is None and not plain.policy.has_priors
    model.eval(), plain.eval()
    with torch.no_grad():
        raw, out, scores, raw_scores = plain.residuals(x), model.residuals(x), model.detect(x), plain.detect(x)
    gate = snr_gate(estimated_snr_db(x[:, 0]), 9.0, 12.0)
    assert gate.tolist() == [0.0, 1.0]  # the clean slice keeps its noise, the noisy one is corrected
    n, b = ALL_HEADS.index("noise"), ALL_HEADS.index("bias")
    torch.testing.assert_close(out[:, n], raw[:, n] * gate[:, None, None])
    torch.testing.assert_close(scores[:, n], raw_scores[:, n] * gate)
    torch.testing.assert_close(out[:, b], smooth_bias_residual(x[:, 0], raw[:, b], 0.1))
    keep = [i for i in range(len(ALL_HEADS)) if i not in (n, b)]
    torch.testing.assert_close(out[:, keep], raw[:, keep])
    model.train(), plain.train()
    torch.testing.assert_close(model.residuals(x), plain.residuals(x))  # training never sees the priors


def test_physics_priors_config_round_trip_and_validation():
    policy = InferencePolicy(bias_smooth=0.1, noise_snr=[9, 12])
    assert policy.noise_snr == (9.0, 12.0)
    assert InferencePolicy.from_dict(policy.to_dict()) == policy
    assert InferencePolicy.from_dict({}).noise_snr is None and InferencePolicy.from_dict({}).bias_smooth == 0.0
    for bad in (-0.1, 2, True, "0.1"):
        with pytest.raises(ValueError, match="bias_smooth"):
            InferencePolicy(bias_smooth=bad)
    for bad in ((12, 9), (9,), (9, "12"), 10.0, (True, 12)):
        with pytest.raises(ValueError, match="noise_snr"):
            InferencePolicy(noise_snr=bad)
    single = build_model("tiny", seed=0, heads=("subsampling",), bias_smooth=0.1, noise_snr=(9.0, 12.0)).eval()
    x = _noisy_and_clean()
    with torch.no_grad():  # a model without the bias and noise heads is left as it is
        torch.testing.assert_close(single.residuals(x), single.residuals(x, policy=single.policy.without_priors()))


def test_ungated_residuals_times_gate_scores_are_the_residuals():
    torch.manual_seed(0)
    model = build_model("tiny", seed=3, gates=True, consistency=True, noise_snr=(9.0, 12.0)).eval()
    x = torch.randn(2, 1, 37, 50)
    with torch.no_grad():
        gated = model.residuals(x)
        scores = model.gate_scores(x)
        ungated = model.ungated_residuals(x)
    assert scores.shape == (2, 4) and ungated.shape == gated.shape
    # data consistency is linear and the SNR gate a factor per slice, so the gates factor out exactly
    torch.testing.assert_close(scores[:, :, None, None] * ungated, gated, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no artefact detector"):
        build_model("tiny", seed=3).gate_scores(x)
    with pytest.raises(ValueError, match="expected input"):
        model.ungated_residuals(x[:, 0])


def test_noise_gate_takes_given_snrs_instead_of_the_slices_own():
    from artefix.models.priors import estimated_snr_db

    model = _gated(noise_snr=(9.0, 12.0)).eval()
    x = _noisy_and_clean()
    n = ALL_HEADS.index("noise")
    with torch.no_grad():
        own = model.residuals(x)
        same = model.residuals(x, snr_db=estimated_snr_db(x[:, 0]))
        clean = model(x, snr_db=torch.tensor([30.0, 30.0]))
        noisy = model.residuals(x, snr_db=torch.tensor([0.0, 0.0]))
        raw = model.residuals(x.clone(), snr_db=None)
        scores = model.detect(x, snr_db=torch.tensor([30.0, 0.0]))
        raw_scores = model.gate_scores(x)
    torch.testing.assert_close(same, own)
    assert not clean.residuals[:, n].any() and (noisy[:, n] != 0).all(dim=(-2, -1)).all()
    keep = [i for i in range(len(ALL_HEADS)) if i != n]
    torch.testing.assert_close(clean.residuals[:, keep], raw[:, keep])
    assert scores[0, n] == 0 and scores[1, n] == pytest.approx(float(raw_scores[1, n]))
    with pytest.raises(ValueError, match="snr_db must have shape"):
        model.residuals(x, snr_db=torch.tensor([1.0]))


def test_an_ungated_policy_applies_every_residual_in_full_and_keeps_the_scores():
    model = build_model("tiny", seed=2, gates=True, noise_snr=(9.0, 12.0)).eval()
    x = torch.randn(2, 1, 40, 44, generator=torch.Generator().manual_seed(0))
    ungated = model.policy.replace(gated=False)
    with torch.no_grad():
        gated, scores = model.infer(x)
        full = model.ungated_residuals(x)
        residuals, reported = model.infer(x, policy=ungated)
        torch.testing.assert_close(residuals, full)
        torch.testing.assert_close(reported, scores)  # still reported
        torch.testing.assert_close(model.detect(x, policy=ungated), scores)
    assert not torch.allclose(gated, full)
    plain = build_model("tiny", seed=2).eval()
    with torch.no_grad():
        before = plain.residuals(x)
        torch.testing.assert_close(plain.residuals(x, policy=ungated), before)  # no detector: nothing changes
        assert plain(x).scores is None


def test_the_model_is_never_switched_in_place_by_a_call_with_another_policy():
    model = _gated(noise_snr=(9.0, 12.0))
    own = model.policy
    x = _noisy_and_clean()
    with torch.no_grad():
        before = model(x)
        model(x, policy=own.replace(ensemble=8, gated=False).without_priors())
        after = model(x)
    assert model.policy is own
    torch.testing.assert_close(after.residuals, before.residuals, rtol=0, atol=0)
    with pytest.raises(TypeError, match="InferencePolicy"):
        model(x, policy={"ensemble": 8})


def test_legacy_flat_settings_split_into_architecture_and_policy():
    from artefix.models.dual_domain import split_settings

    architecture, inference = split_settings({"base_width": 4, "gates": True, "consistency": True, "ensemble": 2})
    assert architecture == {"base_width": 4, "gates": True} and inference == {"consistency": True, "ensemble": 2}
    with pytest.raises(ValueError, match="unknown ModelConfig"):
        ModelConfig.from_dict({"ensemble": 2})
    with pytest.raises(ValueError, match="unknown inference setting"):
        InferencePolicy.from_dict({"gates": True})


def test_the_policy_holds_the_head_selection_strengths_and_snr_scope():
    policy = InferencePolicy().with_options(only=["noise", "bias"], strength={"noise": 0.5}, snr_scope="slice")
    assert policy.only == ("noise", "bias") and policy.strengths == {"noise": 0.5} and policy.snr_scope == "slice"
    assert InferencePolicy.from_dict(policy.to_dict()) == policy
    assert "noise residual at 50%" in policy.steps() and "only noise, bias applied" in policy.steps()
    for bad, words in (
        ({"strength": {"noise": 1.5}}, "`strength`: noise=1.5 must be a number from 0 to 1"),
        ({"only": ["bias"], "strength": {"noise": 0.5}}, "`strength` names noise, which `only` leaves out"),
        ({"snr_scope": "volume"}, "snr_scope must be one of scan, slice"),
    ):
        with pytest.raises(ValueError, match=re.escape(words)):
            InferencePolicy().with_options(**bad)
    model = _gated()
    x = _noisy_and_clean()
    with torch.no_grad():
        full = model(x)
        chosen = model(x, policy=model.policy.with_options(only=["noise", "bias"], strength={"noise": 0.5}))
    weights = torch.tensor([1.0 if h == "bias" else 0.5 if h == "noise" else 0.0 for h in ALL_HEADS])
    torch.testing.assert_close(chosen.output, apply_residuals(x, full.residuals, weights, ALL_HEADS))
    torch.testing.assert_close(chosen.residuals, full.residuals)  # all residuals are still returned
