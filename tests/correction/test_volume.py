"""The slicing path of correct and qc (:func:`artefix.correction.volume.slice_stack`) and the volume loop
(:func:`~artefix.correction.volume.correct_volume`): working shape, snapshots, timing, SNR scope."""

import time

import numpy as np
import pytest
import torch
from torch import nn

from artefix.correction import correct_volume
from artefix.data.io import Volume
from artefix.models import ModelOutput


def test_slice_stack_errors_name_the_slice_axis_only_where_there_is_one():
    from artefix.correction.volume import slice_stack
    from artefix.errors import InputError

    with pytest.raises(InputError) as exc:
        slice_stack(Volume(np.ones((1, 5), np.float32)), None, None, min_side=2, purpose="correct")
    assert str(exc.value) == "slices must be at least 2x2, got 1x5"
    with pytest.raises(InputError, match=r"got 4x1 \(slices along axis 2\)$"):
        slice_stack(Volume(np.ones((4, 1, 3), np.float32)), 2, None, min_side=3, purpose="check")
    with pytest.raises(InputError, match="^input: every slice is constant; there is nothing to check$"):
        slice_stack(Volume(np.ones((4, 4, 3), np.float32)), 2, None, min_side=3, purpose="check")
    with pytest.raises(InputError, match="^scan.nii.gz: every slice is constant; there is nothing to correct$"):
        slice_stack(
            Volume(np.ones((4, 4, 3), np.float32), source="scan.nii.gz"), 2, None, min_side=3, purpose="correct"
        )
    stack = slice_stack(
        Volume(np.random.default_rng(0).random((6, 5, 3), dtype=np.float32)), 2, None, min_side=2, purpose="x"
    )
    assert stack.axis == 2 and stack.slices.shape == (3, 6, 5) and stack.work == (6, 5) and not stack.constant.any()


# --------------------------------------------------------------------------------- the volume loop


class Scaled(nn.Module):
    """Every head's residual is ``factor * u``: the residual of slice z is ``factor * (x_z - mean_z)``."""

    def __init__(self, heads: tuple[str, ...] = ("bias", "noise"), factor: float = 0.5) -> None:
        super().__init__()
        self.head_names = heads
        self.factor = factor
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> ModelOutput:
        self.batches.append(int(x.shape[0]))
        return ModelOutput(x, self.factor * x.expand(-1, len(self.head_names), -1, -1))


def _contrasts(scales: list[float], shape: tuple[int, int] = (12, 10), seed: int = 0) -> Volume:
    """A (H, W, N) volume whose slice z is one random pattern times ``scales[z]``, plus an offset."""
    pattern = np.random.default_rng(seed).random(shape)
    return Volume((pattern[..., None] * np.asarray(scales) + 100.0).astype(np.float32))


def test_slice_stack_works_at_the_in_plane_spacing_of_the_slice_axis() -> None:
    from artefix.correction.core import working_shape
    from artefix.correction.volume import slice_stack

    array = np.random.default_rng(1).random((30, 40, 6), dtype=np.float32)
    volume = Volume(array, spacing=(1.0, 2.0, 3.0))
    for axis, (h, w), in_plane in ((2, (30, 40), (1.0, 2.0)), (0, (40, 6), (2.0, 3.0)), (1, (30, 6), (1.0, 3.0))):
        stack = slice_stack(volume, axis, (20, 20), min_side=2, purpose="correct")
        assert stack.slices.shape[1:] == (h, w)
        assert stack.work == working_shape((h, w), in_plane, (20, 20))
    square = working_shape((30, 40), matrix=(20, 20))
    assert slice_stack(volume, 2, (20, 20), min_side=2, purpose="correct").work != square
    image = Volume(array[:, :, 0], spacing=(2.0, 1.0))
    tall = working_shape((30, 40), (2.0, 1.0), (20, 20))
    assert slice_stack(image, None, (20, 20), min_side=2, purpose="correct").work == tall != square
    result = correct_volume(volume, Scaled(), matrix=(20, 20))
    assert result.record.work_shape == working_shape((30, 40), (1.0, 2.0), (20, 20))


def test_the_smallest_slice_corrected_is_2x2() -> None:
    from artefix.errors import InputError

    volume = Volume(np.array([[[1.0, 5.0], [2.0, 3.0]], [[4.0, 0.0], [7.0, 1.0]]], np.float32))
    result = correct_volume(volume, Scaled(factor=0.0))
    np.testing.assert_allclose(result.volume.array, volume.array, atol=1e-5)
    with pytest.raises(InputError, match="at least 2x2, got 2x1"):
        correct_volume(Volume(np.ones((2, 1, 3), np.float32) * [1.0, 2.0, 3.0]), Scaled(), axis=2)


@pytest.mark.parametrize("scales", [[9.0, 8.0, 7.0, 6.0, 5.0], [5.0, 6.0, 7.0, 8.0, 9.0], [7.0, 9.0, 5.0, 8.0, 6.0]])
def test_snapshots_are_the_top_k_slices_by_correction_in_any_order(scales: list[float]) -> None:
    volume = _contrasts(scales)
    for batch_size in (1, 2, 5):
        record = correct_volume(volume, Scaled(), top_k=2, batch_size=batch_size).record
        scores = record.mean_abs_residual.sum(axis=1)
        assert [s.index for s in record.snapshots] == list(np.argsort(-scores)[:2])
        assert [s.index for s in record.snapshots] == sorted(range(5), key=lambda z: -scales[z])[:2]
        assert [s.score for s in record.snapshots] == pytest.approx(sorted(scores, reverse=True)[:2])
    assert correct_volume(volume, Scaled(), top_k=0).record.snapshots == ()
    assert len(correct_volume(volume, Scaled(), top_k=9).record.snapshots) == 5


def test_snapshots_of_equal_corrections_are_the_first_slices() -> None:
    record = correct_volume(_contrasts([3.0] * 5), Scaled(), top_k=2, batch_size=1).record
    assert len(set(record.mean_abs_residual.sum(axis=1))) == 1  # identical slices, identical scores
    assert [s.index for s in record.snapshots] == [0, 1]
    # ties listed by slice index, however the heap holding them has ordered them
    record = correct_volume(_contrasts([1.0, 3.0, 3.0, 3.0]), Scaled(), top_k=3, batch_size=1).record
    assert [s.index for s in record.snapshots] == [1, 2, 3]


def test_snapshots_keep_the_top_k_for_a_large_k() -> None:
    # k above 256, where two equal counts need not be one int object
    falling = list(np.linspace(300.0, 1.0, 300))
    record = correct_volume(_contrasts(falling, shape=(3, 3)), Scaled(), top_k=260, batch_size=64).record
    assert [s.index for s in record.snapshots] == list(range(260))
    rising = falling[::-1]  # each later slice displaces the smallest snapshot kept
    record = correct_volume(_contrasts(rising, shape=(3, 3)), Scaled(), top_k=260, batch_size=64).record
    assert [s.index for s in record.snapshots] == list(range(299, 39, -1))


def test_the_record_times_the_correction() -> None:
    volume = _contrasts([1.0, 2.0, 3.0])
    start = time.perf_counter()
    record = correct_volume(volume, Scaled()).record
    assert 0.0 < record.seconds <= time.perf_counter() - start


def test_auto_batch_size_of_a_shape_without_pixels_is_the_largest_batch() -> None:
    from artefix.correction import auto_batch_size

    assert auto_batch_size((0, 7), "cpu") == auto_batch_size((1, 1), "cpu") == 8


def test_auto_batch_size_counts_the_pixels_of_a_slice_whatever_its_aspect() -> None:
    from artefix.correction import auto_batch_size

    square = auto_batch_size((256, 256), "cpu")
    assert auto_batch_size((128, 512), "cpu") == auto_batch_size((512, 128), "cpu") == square
    assert auto_batch_size((64, 1024), "cpu") == auto_batch_size((1024, 64), "cpu") == square


def test_a_snapshot_scores_the_applied_heads_only() -> None:
    volume = _contrasts([4.0, 9.0, 6.0])
    for only, applied in ((["bias"], [0]), (["noise"], [1]), (None, [0, 1]), ([], [0, 1])):  # none applied: all
        record = correct_volume(volume, Scaled(), only=only, top_k=3).record
        for snap in record.snapshots:
            assert snap.score == pytest.approx(record.mean_abs_residual[snap.index, applied].sum(), rel=1e-12)


def test_a_volume_whose_spacing_no_longer_fits_its_axes_works_at_square_pixels() -> None:
    from artefix.correction.core import working_shape
    from artefix.correction.volume import slice_stack

    volume = Volume(np.random.default_rng(2).random((30, 40, 4), dtype=np.float32), spacing=(1.0, 3.0, 1.0))
    for spacing in ((1.0, 3.0), (1.0, 3.0, 1.0, 2.0)):  # changed after the volume was built: fewer or more
        volume.spacing = spacing
        stack = slice_stack(volume, 2, (20, 20), min_side=2, purpose="correct")
        assert stack.work == working_shape((30, 40), (1.0, 1.0), (20, 20))
    with pytest.raises(TypeError):
        slice_stack(volume, 2, (20, 20), 2, "correct")  # min_side and purpose are keyword-only


def test_the_default_snapshot_count_and_the_models_device() -> None:
    from artefix.correction.volume import _model_device

    assert len(correct_volume(_contrasts([4.0, 9.0, 6.0, 2.0, 5.0]), Scaled()).record.snapshots) == 3
    assert _model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")
    assert _model_device(nn.ReLU()) == torch.device("cpu")  # no parameters


def test_the_scan_snr_scope_is_read_by_value() -> None:
    from artefix.models import build_model

    rng = np.random.default_rng(3)
    volume = Volume((rng.random((32, 32, 3)) + np.linspace(1.0, 2.0, 3)).astype(np.float32))
    model = build_model("tiny", seed=3, noise_snr=(9.0, 12.0)).eval()
    scope = "".join(["sc", "an"])  # as read from a command line or a file: not the interned literal
    record = correct_volume(volume, model, snr_scope=scope).record
    assert record.snr_scope == "scan" and record.scan_snr == pytest.approx(float(np.median(record.snr_db)))


def test_residuals_are_kept_only_on_request_in_memory_or_in_the_scratch_folder(tmp_path) -> None:
    volume = _contrasts([2.0, 5.0, 3.0])
    assert correct_volume(volume, Scaled()).residuals == {}
    in_memory = correct_volume(volume, Scaled(), keep_residuals=True).residuals
    mapped = correct_volume(volume, Scaled(), keep_residuals=True, scratch_dir=tmp_path).residuals
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bias.npy", "noise.npy"]
    for head in ("bias", "noise"):
        np.testing.assert_array_equal(mapped[head].array, in_memory[head].array)
        np.testing.assert_array_equal(np.load(tmp_path / f"{head}.npy"), in_memory[head].array)


def test_progress_counts_constant_slices_as_done() -> None:
    volume = _contrasts([2.0, 0.0, 5.0, 3.0, 0.0, 4.0])  # slices 1 and 4 are constant
    progress: list[tuple[int, int]] = []
    record = correct_volume(volume, Scaled(), batch_size=2, progress=lambda d, t: progress.append((d, t))).record
    assert record.constant_slices == (1, 4)
    assert progress == [(4, 6), (6, 6)]  # the two constant slices and each batch of two


@pytest.mark.parametrize(
    ("option", "value"), [("top_k", -1), ("top_k", True), ("top_k", 2.0), ("batch_size", True), ("batch_size", 2.0)]
)
def test_top_k_and_batch_size_must_be_integers(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        correct_volume(_contrasts([2.0, 5.0]), Scaled(), **{option: value})


def test_the_options_of_correct_volume_are_keyword_only() -> None:
    volume = _contrasts([2.0, 5.0])
    with pytest.raises(TypeError):
        correct_volume(volume, Scaled(), ["bias"])
    assert correct_volume(volume=volume, model=Scaled(), only=["bias"]).record.applied == ("bias",)


class Listening(Scaled):
    """A module without a policy of its own that takes the inference options and records them."""

    def __init__(self) -> None:
        super().__init__()
        self.options: list[dict[str, object]] = []

    def forward(self, x: torch.Tensor, **options: object) -> ModelOutput:
        self.options.append(options)
        return super().forward(x)


def test_a_policy_given_reaches_a_model_without_one_of_its_own() -> None:
    from artefix.models.policy import InferencePolicy

    volume = _contrasts([2.0, 5.0])
    model = Listening()
    correct_volume(volume, model)
    assert model.options == [{}]  # no policy anywhere: the module is called with the image alone
    policy = InferencePolicy(only=("bias",))
    record = correct_volume(volume, model, policy=policy).record
    assert model.options[1]["policy"].only == ("bias",) and record.applied == ("bias",)


def test_the_detector_runs_once_per_batch_with_the_kspace_check() -> None:
    from artefix.models import build_model

    model = build_model("tiny", seed=1, gates=True, consistency=True).eval()
    calls = []
    model.detector.register_forward_hook(lambda *_: calls.append(1))
    volume = _contrasts([4.0, 9.0, 6.0, 2.0, 5.0], shape=(16, 16))
    record = correct_volume(volume, model, batch_size=2).record
    assert record.detection is not None and record.kspace_window is not None
    assert len(calls) == 3  # the correction's pass gave the scores; the k-space check does not run it again
