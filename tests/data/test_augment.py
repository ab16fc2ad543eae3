import numpy as np
import pytest

from artefix.data.augment import Augmentation, BackgroundMask, ScaleCrop
from artefix.data.dataset import ArtefactDataset
from artefix.data.slices import SliceIndex


def _image():
    yy, xx = np.mgrid[:24, :24]
    return (np.exp(-(((yy - 8) / 5.0) ** 2 + ((xx - 14) / 4.0) ** 2)) * 3).astype(np.float32)


def test_geometry_only_is_a_symmetry_of_the_square():
    img = _image()
    aug = Augmentation(gamma=(1.0, 1.0))
    seen = set()
    for seed in range(60):
        out = aug(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.isclose(out.sum(), img.sum()) and np.isclose(out.max(), img.max())
        seen.add(out.tobytes())
    assert len(seen) == 8  # the dihedral group of the square


def test_gamma_keeps_peak_and_order_and_varies_contrast():
    img = _image()
    aug = Augmentation(flips=False, rot90=False, gamma=(0.5, 2.0))
    outs = [aug(img, np.random.default_rng(s)) for s in range(20)]
    for out in outs:
        assert np.isclose(out.max(), img.max())
        flat_in, flat_out = img.ravel(), out.ravel()
        order = np.argsort(flat_in, kind="stable")
        assert np.all(np.diff(flat_out[order]) >= -1e-6)  # monotonic intensity map
    assert np.ptp([o.mean() for o in outs]) > 0.05


def test_non_square_never_rotates():
    img = np.random.default_rng(0).random((10, 14)).astype(np.float32)
    for s in range(20):
        assert Augmentation()(img, np.random.default_rng(s)).shape == (10, 14)


def test_bad_gamma():
    with pytest.raises(ValueError, match="gamma"):
        Augmentation(gamma=(0.0, 1.0))


def test_dataset_augments_train_only_and_keeps_corruption_params(tmp_path):
    for k in range(2):
        np.save(tmp_path / f"s{k}.npy", np.stack([_image() * (k + 1)] * 3, axis=-1))
    files = sorted(tmp_path.glob("*.npy"))
    plain = ArtefactDataset(SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="train")
    aug = ArtefactDataset(
        SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="train", augment=Augmentation()
    )
    val = ArtefactDataset(
        SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="val", augment=Augmentation()
    )
    val_plain = ArtefactDataset(SliceIndex(files, matrix=(24, 24), normalise="percentile"), mode="val")
    changed = 0
    for i in range(len(plain)):
        assert plain[i].params == aug[i].params
        changed += not np.allclose(plain[i].clean, aug[i].clean)
        np.testing.assert_array_equal(val[i].clean, val_plain[i].clean)
    assert changed > 0


def _native(shape=(64, 48), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-(((yy - shape[0] / 2) / (shape[0] / 4)) ** 2 + ((xx - shape[1] / 2) / (shape[1] / 4)) ** 2))
    return (blob + 0.05 * rng.random(shape)).astype(np.float32)


def test_scale_crop_range_spans_whole_slice_to_native_pixels():
    crop = ScaleCrop((32, 32))
    assert crop.scale_range((64, 48)) == (0.5, 1.0)  # 64 -> 32 fits the longer side
    assert crop.scale_range((20, 30)) == (1.0, 1.0)  # smaller than the matrix: native, padded
    assert ScaleCrop((32, 32), min_scale=0.8).scale_range((64, 48)) == (0.8, 1.0)


def test_scale_crop_shapes_sign_and_determinism():
    img = _native()
    crop = ScaleCrop((32, 32))
    outs = [crop(img, np.random.default_rng(s)) for s in range(12)]
    for out in outs:
        assert out.shape == (32, 32) and out.dtype == np.float32 and out.min() >= 0
    np.testing.assert_array_equal(crop(img, np.random.default_rng(3)), outs[3])
    assert len({o.tobytes() for o in outs}) == len(outs)  # random zoom and window


def test_scale_crop_at_native_scale_is_an_exact_window():
    img = _native()
    out = ScaleCrop((32, 32), min_scale=1.0)(img, np.random.default_rng(5))
    windows = [img[y : y + 32, x : x + 32] for y in range(33) for x in range(17)]
    assert any(np.array_equal(out, w) for w in windows)


def test_scale_crop_smallest_scale_keeps_the_whole_field_of_view():
    class Lowest:  # draws the lowest zoom factor and the top-left window
        def uniform(self, low, high):
            return low

        def random(self):
            return 0.0

    img = _native((64, 64))
    out = ScaleCrop((32, 32))(img, Lowest())
    # factor 0.5: the Fourier-resized whole slice, mean intensity preserved
    assert out.shape == (32, 32)
    assert abs(float(out.mean()) - float(img.mean())) < 0.01


def test_scale_crop_centre_pads_small_slices_and_is_deterministic():
    small = _native((20, 26))
    out = ScaleCrop((32, 32)).centre(small)
    assert out.shape == (32, 32)
    np.testing.assert_array_equal(out[6:26, 3:29], small)
    assert out[:6].sum() == 0 and out[:, :3].sum() == 0
    big = _native((64, 48))
    np.testing.assert_array_equal(ScaleCrop((32, 32)).centre(big), big[16:48, 8:40])


@pytest.mark.parametrize("kwargs", [{"matrix": (1, 32)}, {"matrix": (32, 32), "min_scale": 0.0}])
def test_scale_crop_bad_options(kwargs):
    with pytest.raises(ValueError):
        ScaleCrop(**kwargs)


def _head(size=64):
    """A bright disc (the head) with inner structure on a faint noisy background, non-negative."""
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.35 * size) ** 2) * (2 + np.cos(xx / 3))
    return (disc + 0.02 * np.random.default_rng(0).random((size, size))).astype(np.float32)


def test_background_mask_probability_zero_never_masks_and_one_always_masks_the_head():
    image = _head()
    assert all(BackgroundMask(0.0).draw(image, np.random.default_rng(s)) == (None, None) for s in range(10))
    whens = set()
    for seed in range(20):
        when, mask = BackgroundMask(1.0).draw(image, np.random.default_rng(seed))
        whens.add(when)
        assert mask.shape == image.shape and mask.dtype == bool
        assert mask[32, 32] and not mask[0, 0]  # the head's centre is kept, the corner is background
    assert whens == {"before", "after"}


@pytest.mark.parametrize("kwargs", [{"probability": 1.5}, {"probability": -0.1}, {"max_erosion": 0.5}])
def test_background_mask_bad_options(kwargs):
    with pytest.raises(ValueError):
        BackgroundMask(**kwargs)


def test_masked_training_items_have_a_zero_background_in_the_target(tmp_path):
    """Masked before corruption: k-space noise reaches the background; after: both images are zero there."""
    path = tmp_path / "head.npy"
    np.save(path, _head(48)[None])
    index = SliceIndex([path], matrix=(48, 48), normalise="percentile")
    plain = ArtefactDataset(index, artefacts=("noise",), seed=0)
    masked = ArtefactDataset(index, artefacts=("noise",), seed=0, background=BackgroundMask(1.0))
    seen = set()
    for epoch in range(12):
        plain.set_epoch(epoch), masked.set_epoch(epoch)
        a, b = plain[0], masked[0]
        assert a.params == b.params  # the corruption is drawn from its own stream, unchanged by the mask
        clean, corrupted = b.clean[0].numpy(), b.corrupted[0].numpy()
        corner = np.s_[:4, :4]
        assert np.ptp(clean[corner]) == 0  # the target's background is one constant (zero before Z-norm)
        if np.ptp(corrupted[corner]) == 0:
            seen.add("after")
        else:
            seen.add("before")  # the noise was added to the masked image, so its background is noisy
    assert seen == {"before", "after"}
