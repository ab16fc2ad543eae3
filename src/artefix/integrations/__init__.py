"""Artefix's artefacts as transforms of other libraries' augmentation pipelines.

* :mod:`artefix.integrations.torchio`: ``RandomArtefact`` (a TorchIO random transform) and ``ApplyArtefact``
  (its frozen, replayable parameters); ``pip install 'artefix[torchio]'``.
* :mod:`artefix.integrations.monai`: ``RandArtefact`` and ``RandArtefactd`` (MONAI array and dictionary
  transforms); ``pip install 'artefix[monai]'``.
* :mod:`artefix.integrations.common`: what both share, slice-wise corruption of a channel-first volume with
  per-slice parameters drawn from one seed (needs neither library).

This package imports neither TorchIO nor MONAI; each submodule imports its own library.
"""
