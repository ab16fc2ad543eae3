"""MONAI transforms that corrupt images with artefix's k-space artefacts, slice by slice.

:class:`RandArtefact` (array) and :class:`RandArtefactd` (dictionary) are MONAI randomizable transforms: the
random state ``self.R`` (``set_random_state``, or per worker by ``monai.data.DataLoader``) decides whether to
corrupt (``prob``) and draws one seed per image, which artefix's samplers turn into independent parameters for
every slice along ``axis``. The parameters of the last call are kept in ``params`` (per key for the dictionary
transform) and :func:`artefix.integrations.common.apply_slice_params` re-applies them exactly; ``randomize=False``
repeats the last draw. Images are channel-first, ``(C, H, W)`` (each channel one slice) or ``(C, H, W, D)``; the
output keeps the input's shape, dtype and ``MetaTensor`` metadata.

Example:
    >>> import torch
    >>> from monai.transforms import Compose
    >>> from artefix.integrations.monai import RandArtefactd
    >>> transform = Compose([RandArtefactd("image", "noise", severity=5.0, prob=0.5)]).set_random_state(seed=0)
    >>> out = transform({"image": torch.rand(1, 64, 64, 8)})
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from artefix.artefacts.base import Output
from artefix.integrations.common import ArtefactArg, SeverityArg, SliceCorruption, SliceParams, missing_extra

try:
    from monai.config import KeysCollection
    from monai.data.meta_obj import get_track_meta
    from monai.data.meta_tensor import MetaTensor
    from monai.transforms import MapTransform, RandomizableTransform
    from monai.utils import MAX_SEED, TransformBackends
    from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("monai", "MONAI") from exc

__all__ = ["RandArtefact", "RandArtefactd"]


class RandArtefact(RandomizableTransform):
    """Corrupt each slice of a channel-first image with its own random draw of an artefix artefact.

    Args:
        artefact: Name of the artefact, ``random``, or names applied in order (a composition); the choices and
            the severities' units are in :class:`artefix.integrations.common.SliceCorruption`.
        severity: An evaluation level (one per name of a composition), or None to draw training parameters.
        prob: Probability of corrupting an image.
        axis: Spatial axis of a ``(C, H, W, D)`` image along which slices are taken (0, 1 or 2; -1 is D).
            Ignored for 2D images.
        output: ``"magnitude"`` (default, what scanners deliver) or ``"real"``.
        options: Artefact options: ``pe_axis`` (-2 or -1 of each slice), ``mask`` for subsampling severities.

    Attributes:
        params: The per-slice parameters of the last corruption (None before the first, or when skipped).

    Raises:
        ValueError: On an unknown artefact, an invalid severity, option, axis or output (the message names the
            valid choices).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        artefact: ArtefactArg,
        severity: SeverityArg = None,
        prob: float = 1.0,
        axis: int = -1,
        output: Output = "magnitude",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.corruption = SliceCorruption(artefact, severity, axis, output, options or {})
        self.params: SliceParams | None = None
        self._seed: int | None = None

    def randomize(self, data: Any = None) -> None:
        """Decide whether to corrupt (``prob``) and draw the seed of the slices' parameters from ``self.R``."""
        super().randomize(None)
        if self._do_transform:
            self._seed = int(self.R.randint(MAX_SEED, dtype=np.int64))

    def __call__(self, img: Any, randomize: bool = True) -> Any:
        """Corrupt ``img`` (NumPy array, tensor or ``MetaTensor``); ``randomize=False`` repeats the last draw."""
        img = convert_to_tensor(img, track_meta=get_track_meta())
        if randomize or self._seed is None:
            self.randomize(None)
        if not self._do_transform:
            self.params = None
            return img
        plain = img.as_tensor() if isinstance(img, MetaTensor) else img
        self.params = self.corruption.draw(self._seed, tuple(plain.shape))
        out = self.corruption.apply(plain, self.params)
        return convert_to_dst_type(out, dst=img, dtype=img.dtype)[0]


class RandArtefactd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandArtefact`: each key gets its own draw (``prob`` is decided once).

    Args:
        keys: Keys of the images to corrupt (not label maps).
        artefact: See :class:`RandArtefact`.
        severity: See :class:`RandArtefact`.
        prob: Probability of corrupting the images of a sample.
        axis: See :class:`RandArtefact`.
        output: See :class:`RandArtefact`.
        options: See :class:`RandArtefact`.
        allow_missing_keys: Don't raise when a key is missing.

    Attributes:
        params: Per key, the per-slice parameters of the last call (empty when it was skipped).
    """

    backend = RandArtefact.backend

    def __init__(
        self,
        keys: KeysCollection,
        artefact: ArtefactArg,
        severity: SeverityArg = None,
        prob: float = 1.0,
        axis: int = -1,
        output: Output = "magnitude",
        options: Mapping[str, Any] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_artefact = RandArtefact(artefact, severity, 1.0, axis, output, options)
        self.params: dict[Hashable, SliceParams] = {}

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandArtefactd:
        """Seed this transform and its array transform (MONAI's convention)."""
        super().set_random_state(seed, state)
        self.rand_artefact.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Corrupt ``data[key]`` for each key, each with its own draw."""
        d = dict(data)
        self.randomize(None)
        self.params = {}
        for key in self.key_iterator(d):
            if self._do_transform:
                d[key] = self.rand_artefact(d[key], randomize=True)
                self.params[key] = self.rand_artefact.params
            else:
                d[key] = convert_to_tensor(d[key], track_meta=get_track_meta())
        return d
