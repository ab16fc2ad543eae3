"""TorchIO transforms that corrupt images with artefix's k-space artefacts, slice by slice.

:class:`RandomArtefact` is a TorchIO random transform: for each intensity image of a subject it draws one seed
from torch's global generator (TorchIO's mechanism, so ``torch.manual_seed`` and DataLoader workers seed it),
turns it into independent parameters for every slice along ``axis`` (artefix's samplers) and applies them
through :class:`ApplyArtefact`, the deterministic transform that holds those frozen parameters. TorchIO records
``ApplyArtefact`` in the subject's history, so ``subject.get_composed_history()`` re-applies exactly the same
corruption. 2D images (depth 1) are one slice per channel whatever ``axis``; label maps are left alone.

Example:
    >>> import torch, torchio as tio
    >>> from artefix.integrations.torchio import RandomArtefact
    >>> subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.rand(1, 64, 64, 8)))
    >>> transform = tio.Compose([RandomArtefact("motion"), RandomArtefact("noise", severity=5.0, p=0.5)])
    >>> corrupted = transform(subject)
    >>> replayed = corrupted.get_composed_history()(subject)  # the same corruption, bit for bit
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artefix.artefacts.base import Output
from artefix.integrations.common import (
    ArtefactArg,
    SeverityArg,
    SliceCorruption,
    SliceParams,
    apply_slice_params,
    check_axis,
    missing_extra,
)

try:
    from torchio import Subject
    from torchio.transforms import IntensityTransform
    from torchio.transforms.augmentation import RandomTransform
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("torchio", "TorchIO") from exc

__all__ = ["ApplyArtefact", "RandomArtefact"]


def _slice_axis(image: Any, axis: int) -> int:
    """The slice axis of a TorchIO image: the depth axis of a 2D image (depth 1), else ``axis``."""
    return -1 if image.is_2d() else axis


class RandomArtefact(RandomTransform, IntensityTransform):
    """Corrupt each slice of each intensity image with its own random draw of an artefix artefact.

    Args:
        artefact: An artefix artefact (``bias``, ``subsampling``, ``motion``, ``periodic-motion``, ``noise``),
            ``random`` or a list of names; see :class:`artefix.integrations.common.SliceCorruption`.
        severity: None for the artefact's training distribution, else its evaluation level(s).
        axis: Spatial axis of a 3D image along which slices are taken: 0, 1 or 2 (-1, the default, is the
            depth axis of TorchIO's (C, W, H, D) layout). Ignored for 2D images.
        output: ``"magnitude"`` (default, what scanners deliver) or ``"real"``.
        options: Artefact options: ``pe_axis`` (-2 or -1 of each slice), ``mask`` for subsampling severities.
        **kwargs: TorchIO's transform arguments (``p``, ``include``, ``exclude``, ``copy``, ...).

    Raises:
        ValueError: On an unknown artefact, an invalid severity, option, axis or output (the message names the
            valid choices).
    """

    def __init__(
        self,
        artefact: ArtefactArg,
        severity: SeverityArg = None,
        axis: int = -1,
        output: Output = "magnitude",
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.corruption = SliceCorruption(artefact, severity, axis, output, options or {})
        self.args_names = ["artefact", "severity", "axis", "output", "options"]

    def _get_named_arguments(self) -> dict[str, object]:
        return {name: getattr(self.corruption, name) for name in self.args_names}

    def get_params(self) -> int:
        """One seed for an image's draws, from torch's global generator (as TorchIO's random transforms)."""
        return self._get_random_seed()

    def apply_transform(self, subject: Subject) -> Subject:
        """Draw every slice's parameters of every intensity image, then apply them with :class:`ApplyArtefact`."""
        images = self.get_images_dict(subject)
        if not images:
            return subject
        c = self.corruption
        params = {
            name: c.draw(self.get_params(), tuple(image.data.shape), _slice_axis(image, c.axis))
            for name, image in images.items()
        }
        transform = ApplyArtefact(params=params, axis=c.axis, output=c.output, **self._get_base_args())
        transformed = transform(subject)
        assert isinstance(transformed, Subject)
        return transformed


class ApplyArtefact(IntensityTransform):
    """Apply recorded per-slice artefix parameters: the deterministic half of :class:`RandomArtefact`.

    Args:
        params: Per image name, one tuple of corruptions (frozen artefix parameter dataclasses, applied in
            order) per slice, channel-major; see :mod:`artefix.integrations.common`.
        axis: Slice axis of 3D images (ignored for 2D images).
        output: ``"magnitude"`` or ``"real"``.
        **kwargs: TorchIO's transform arguments.
    """

    def __init__(
        self,
        params: Mapping[str, SliceParams],
        axis: int = -1,
        output: Output = "magnitude",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.params = {name: tuple(tuple(s) for s in slices) for name, slices in params.items()}
        if output not in ("magnitude", "real"):
            raise ValueError(f"output must be 'magnitude' or 'real', got {output!r}")
        self.axis = check_axis(axis)
        self.output = output
        self.args_names = ["params", "axis", "output"]

    def apply_transform(self, subject: Subject) -> Subject:
        """Apply each image's recorded parameters (an image without a record is left as it is)."""
        for name, image in self.get_images_dict(subject).items():
            if name in self.params:
                data = apply_slice_params(image.data, self.params[name], _slice_axis(image, self.axis), self.output)
                image.set_data(data)
        return subject

    def __repr__(self) -> str:
        def summary(slices: SliceParams) -> str:
            names = sorted({p.name for seq in slices for p in seq})
            return f"{len(slices)} slices of {'+'.join(names) or 'nothing'}"

        images = ", ".join(f"{name}: {summary(slices)}" for name, slices in self.params.items())
        return f"{self.name}(params={{{images}}}, axis={self.axis}, output={self.output!r})"
