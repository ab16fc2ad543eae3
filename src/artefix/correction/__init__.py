"""Artefact correction of real scans with a trained multi-task model (``artefix correct``).

* :mod:`artefix.correction.core`: the per-batch maths (z-normalise, model matrix, head selection, map
  back to the input's units).
* :mod:`artefix.correction.volume`: :func:`correct_volume`, a whole :class:`~artefix.data.io.Volume`
  streamed in slice batches, with a QC record.
* :mod:`artefix.correction.record`: :class:`CorrectionRecord`, that QC record and its summaries.
* :mod:`artefix.correction.options`: what :func:`correct_file` is asked to do: :class:`InferenceOptions`
  (laid over the model card's inference policy), :class:`OutputSpec`, :class:`ExecutionSettings`.
* :mod:`artefix.correction.files`: :func:`correct_file`, file in, file(s) out, atomically.

Example:
    >>> from artefix.correction import correct_volume
    >>> from artefix.models.registry import load_named_model
    >>> model, card = load_named_model("mt-lc-brain")                          # doctest: +SKIP
    >>> result = correct_volume(volume, model, only=["bias", "noise"])         # doctest: +SKIP
    >>> result.volume.array.shape == volume.array.shape                        # doctest: +SKIP
    True
"""

from artefix.correction.core import correct_batch, scan_snr_db, slice_moments, working_shape
from artefix.correction.files import CorrectionRun, correct_file, output_suffix, residual_paths
from artefix.correction.options import ExecutionSettings, InferenceOptions, OutputSpec
from artefix.correction.record import FLAG_MADS, FLAG_MIN_FRACTION, SNR_SCOPES, CorrectionRecord, SliceSnapshot
from artefix.correction.volume import CorrectionResult, auto_batch_size, correct_volume

__all__ = [
    "FLAG_MADS",
    "FLAG_MIN_FRACTION",
    "SNR_SCOPES",
    "CorrectionRecord",
    "CorrectionResult",
    "CorrectionRun",
    "ExecutionSettings",
    "InferenceOptions",
    "OutputSpec",
    "SliceSnapshot",
    "auto_batch_size",
    "correct_batch",
    "correct_file",
    "correct_volume",
    "output_suffix",
    "residual_paths",
    "scan_snr_db",
    "slice_moments",
    "working_shape",
]
