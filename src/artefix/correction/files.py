"""File-level correction (what ``artefix correct`` runs): read, check outputs, correct, write atomically.

Every output is refused before any work when it is unsafe (exists without ``overwrite``, is the input,
has no folder, unsupported family), and nothing is written until the whole volume is corrected, so a
failure while reading or during inference leaves no output at all. Each file is written atomically
(temporary sibling, then rename); should a later write of the same run fail, what this run wrote is
removed again and any outputs it was replacing (``overwrite``) are put back
(:func:`artefix.atomic.output_transaction`).

Output families follow ``OUTPUT``'s extension (:func:`artefix.data.io.write_volume`): NIfTI keeps the
input's header and affine, a folder is a new DICOM series derived from a DICOM input, ``.npy``/``.npz``/
``.h5`` store float32, ``.png`` a 16-bit (or 8-bit) min-max scaled slice. Residual volumes
(``--residuals DIR``: one per model head, applied or not, in the input's units) are written as
``DIR/<head><ext>`` in the output's family (``<head>/`` series folders for DICOM), except that a PNG
output gets ``.npy`` residuals, since a PNG cannot hold signed values in the input's units.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artefix.atomic import check_outputs, check_writable, one_line, output_transaction, same_path
from artefix.correction.options import ExecutionSettings, InferenceOptions, OutputSpec, grouped_options
from artefix.correction.record import CorrectionRecord
from artefix.correction.volume import CorrectionResult, correct_volume
from artefix.data.io import Volume, is_sample, read_input, write_volume
from artefix.errors import InputError, OutputError

_FILE_SUFFIXES = (".nii.gz", ".nii", ".npy", ".npz", ".h5", ".hdf5", ".png")


@dataclass
class CorrectionRun:
    """Everything ``artefix correct`` did: paths, model, QC record and timings.

    Attributes:
        input: Input file or DICOM folder.
        output: Corrected output.
        residual_paths: Head name -> residual volume path (empty without ``--residuals``).
        report: HTML report path, or None.
        summary: JSON summary path, or None.
        model_card: Card of the model used (``name``, ``sha256``, ``weights_path``, ...).
        record: The QC record of the correction.
        timings: Seconds per stage: ``read``, ``load_model``, ``correct``, ``write``, ``total``.
    """

    input: Path
    output: Path
    residual_paths: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    summary: Path | None = None
    model_card: dict[str, Any] = field(default_factory=dict)
    record: CorrectionRecord | None = None
    timings: dict[str, float] = field(default_factory=dict)


def output_suffix(path: Path) -> str:
    """The family suffix of an output path: ``.nii.gz``, ``.npy``, ... or ``""`` for a DICOM folder.

    Raises:
        OutputError: For an unsupported extension.
    """
    text = os.fspath(path)
    name = Path(text).name.lower()
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return ""
    for suffix in _FILE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    if Path(text).suffix == "":
        return ""
    raise OutputError(
        f"{path}: unsupported output {Path(text).suffix}; use {', '.join(_FILE_SUFFIXES)} or a folder (DICOM series)"
    )


def residual_paths(output: Path, folder: Path, heads: Sequence[str]) -> dict[str, Path]:
    """Where ``--residuals DIR`` puts each head's residual volume, in the output's family.

    Args:
        output: The corrected output path (gives the family).
        folder: The residuals folder.
        heads: Head names of the model.

    Returns:
        Head -> path (``DIR/bias.nii.gz``, ``DIR/bias/`` for DICOM, ``DIR/bias.npy`` for PNG outputs).
    """
    suffix = output_suffix(output)
    suffix = ".npy" if suffix == ".png" else suffix
    return {head: Path(folder) / f"{head}{suffix}" for head in heads}


def _check_family(volume: Volume, output: Path, what: str) -> None:
    suffix = output_suffix(output)
    if suffix == "" and volume.format != "dicom":
        raise OutputError(f"{output}: {what} as a DICOM series needs a DICOM input (input is {volume.format})")
    if suffix == ".png" and volume.array.ndim != 2:
        raise OutputError(f"{output}: PNG holds one 2D slice; the input has shape {volume.array.shape}")


def _is_folder(path: Path) -> bool:
    """Whether an output path names a folder (a DICOM series: no extension)."""
    return not path.suffix


def correct_file(
    input: str | Path,
    output: str | Path,
    *,
    model: str | Path | None = None,
    inference: InferenceOptions | None = None,
    outputs: OutputSpec | None = None,
    execution: ExecutionSettings | None = None,
    axis: int | None = None,
    key: str | None = None,
    **keywords: Any,
) -> CorrectionRun:
    """Correct a scan file and write the corrected scan (plus residuals, report and JSON summary).

    Args:
        input: NIfTI, DICOM series folder (or file), fastMRI ``.h5``, ``.npy``/``.npz`` or PNG, or
            ``sample:NAME``, a built-in sample slice (:func:`artefix.data.io.read_input`).
        output: Output path, see the module docstring for families.
        model: Shipped model name or ``.safetensors`` path (default :data:`DEFAULT_MODEL`).
        inference: How the model is applied (:class:`~artefix.correction.options.InferenceOptions`: heads,
            strengths, self-ensemble, priors, gates, SNR scope), laid over its card's policy; None: the
            defaults.
        outputs: What is written besides ``output`` (:class:`~artefix.correction.options.OutputSpec`: residual
            volumes, QC report, overwrite); None: nothing else, and no existing output is replaced.
        execution: Device, batch size, runtime and progress callback
            (:class:`~artefix.correction.options.ExecutionSettings`); None: the defaults (CPU, PyTorch).
        axis: Slice axis (default: the header's acquisition axis, else the last).
        key: Which array/series to read from a multi-array input (npz key, h5 dataset, SeriesInstanceUID).
        **keywords: The older form, one keyword per choice (``only=``, ``strength=``, ``ensemble=``,
            ``priors=``, ``gates=``, ``snr_scope=``, ``residuals=``, ``report=``, ``overwrite=``, ``device=``,
            ``batch_size=``, ``runtime=``, ``progress=``): each builds the attribute of the same name of
            ``inference``, ``outputs`` or ``execution`` (:func:`~artefix.correction.options.grouped_options`).

    Returns:
        The :class:`CorrectionRun`.

    Raises:
        InputError: Unreadable input, bad model, bad options (one-line message).
        OutputError: Unsafe or failed output (one-line message); nothing is left behind.
        TypeError: An unknown keyword, or an older keyword beside the object it belongs to.

    Example:
        >>> from artefix.correction import InferenceOptions, OutputSpec, correct_file
        >>> run = correct_file(                                                     # doctest: +SKIP
        ...     "scan.nii.gz", "corrected.nii.gz",
        ...     inference=InferenceOptions(only=["noise"], strength={"noise": 0.5}),
        ...     outputs=OutputSpec(report="qc.html", residuals="residuals"),
        ... )
    """
    from artefix.correction.spec import ModelSpec
    from artefix.models.registry import check_device

    inference, outputs, execution = grouped_options(keywords, inference=inference, outputs=outputs, execution=execution)
    start = time.perf_counter()
    input_path, output_path = Path(input).expanduser(), Path(os.fspath(output)).expanduser()
    report_path, summary, residual_dir = outputs.report, outputs.summary, outputs.residuals
    inputs = [] if is_sample(input_path) else [input_path]
    if inputs and not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    output_suffix(output_path)
    early = [output_path, *(p for p in (report_path, summary) if p is not None)]
    check_outputs(early, overwrite=outputs.overwrite, inputs=inputs, folder_ok=_is_folder)
    if residual_dir is not None:
        if not residual_dir.parent.is_dir():
            raise OutputError(f"{residual_dir}: its parent folder {residual_dir.parent} does not exist")
        if residual_dir.exists() and not residual_dir.is_dir():
            raise OutputError(f"{residual_dir}: exists and is not a folder")
        check_writable(residual_dir, residual_dir if residual_dir.is_dir() else residual_dir.parent)
    check_device(execution.device)  # before any reading: a bad device is a one-line error at once
    if execution.runtime == "onnx":
        from artefix.models.onnx_runtime import check_onnx_runtime

        check_onnx_runtime()

    t0 = time.perf_counter()
    volume = read_input(input_path, key=key)
    timings = {"read": time.perf_counter() - t0}
    _check_family(volume, output_path, "OUTPUT")

    t0 = time.perf_counter()
    net, card, card_policy = ModelSpec(model, execution.device).load()
    policy = inference.policy(card_policy)
    if execution.runtime == "onnx":
        from artefix.models.onnx_runtime import OnnxModel

        net = OnnxModel(net, policy.around_network())  # the graph fixes what a network pass applies
    timings["load_model"] = time.perf_counter() - t0
    heads = tuple(net.head_names)
    res_paths = residual_paths(output_path, residual_dir, heads) if residual_dir is not None else {}
    if res_paths:
        if residual_dir is not None and residual_dir.is_dir():
            check_outputs(list(res_paths.values()), overwrite=outputs.overwrite, inputs=inputs, folder_ok=_is_folder)
        for path in res_paths.values():
            if any(same_path(path, other) for other in early):
                raise OutputError(f"{path}: a residual volume would overwrite another output")

    run = CorrectionRun(input_path, output_path, res_paths, report_path, summary, card, timings=timings)
    with tempfile.TemporaryDirectory(prefix="artefix-residuals-") as scratch:
        t0 = time.perf_counter()
        result = correct_volume(
            volume,
            net,
            axis=axis,
            batch_size=execution.batch_size,
            matrix=card.get("matrix"),
            keep_residuals=bool(res_paths),
            scratch_dir=Path(scratch) if res_paths else None,
            progress=execution.progress,
            policy=policy,
        )
        timings["correct"] = time.perf_counter() - t0
        run.record = result.record
        _write(run, volume, result, outputs, start)
        del result
    return run


def _write(run: CorrectionRun, volume: Volume, result: CorrectionResult, outputs: OutputSpec, start: float) -> None:
    """Write ``run``'s corrected volume, residuals and report as one transaction (adds its write timings)."""
    t0 = time.perf_counter()
    residual_dir, res_paths = outputs.residuals, run.residual_paths
    targets = [run.output, *res_paths.values(), *(p for p in (run.report, run.summary) if p is not None)]
    if residual_dir is not None and not residual_dir.exists():
        targets.append(residual_dir)  # made by this run: removed again should it fail
    with output_transaction(targets):
        write_volume(result.volume, run.output, overwrite=outputs.overwrite, like=volume)
        if residual_dir is not None and not residual_dir.exists():
            try:
                residual_dir.mkdir()
            except OSError as exc:
                raise OutputError(f"{residual_dir}: cannot create the residual folder ({one_line(exc)})") from exc
        for head, path in res_paths.items():
            write_volume(result.residuals[head], path, overwrite=outputs.overwrite, like=volume)
        run.timings["write"] = time.perf_counter() - t0
        run.timings["total"] = time.perf_counter() - start
        if run.report is not None:
            from artefix.correction.report import write_report

            write_report(run, volume, result.volume, overwrite=outputs.overwrite)
