import numpy as np
import pytest

import artefix
from artefix.data.samples import SAMPLE_NAMES, load_sample


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_samples_are_real_images(name):
    img = load_sample(name)
    assert img.dtype == np.float32 and img.ndim == 2
    assert min(img.shape) >= 256
    assert np.isfinite(img).all()
    assert img.std() > 0.1 * img.mean()  # not a constant or a phantom-like flat image
    # a real scan has dark background and bright anatomy
    assert np.percentile(img, 5) < 0.1 * np.percentile(img, 99)


def test_sample_is_a_fresh_copy_and_lazy_toplevel():
    a = artefix.load_sample()
    a[:] = 0
    assert artefix.load_sample().max() > 0


def test_unknown_sample():
    with pytest.raises(ValueError, match="unknown sample"):
        load_sample("knee")
