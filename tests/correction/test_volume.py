"""The slicing path of correct and qc (:func:`artefix.correction.volume.slice_stack`)."""

import numpy as np
import pytest


def test_slice_stack_errors_name_the_slice_axis_only_where_there_is_one():
    from artefix.correction.volume import slice_stack
    from artefix.data.io import Volume
    from artefix.errors import InputError

    with pytest.raises(InputError) as exc:
        slice_stack(Volume(np.ones((1, 5), np.float32)), None, None, min_side=2, purpose="correct")
    assert str(exc.value) == "slices must be at least 2x2, got 1x5"
    with pytest.raises(InputError, match=r"got 4x1 \(slices along axis 2\)$"):
        slice_stack(Volume(np.ones((4, 1, 3), np.float32)), 2, None, min_side=3, purpose="check")
    with pytest.raises(InputError, match="every slice is constant; there is nothing to check$"):
        slice_stack(Volume(np.ones((4, 4, 3), np.float32)), 2, None, min_side=3, purpose="check")
    stack = slice_stack(
        Volume(np.random.default_rng(0).random((6, 5, 3), dtype=np.float32)), 2, None, min_side=2, purpose="x"
    )
    assert stack.axis == 2 and stack.slices.shape == (3, 6, 5) and stack.work == (6, 5) and not stack.constant.any()
