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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artefix.atomic import check_outputs, check_writable, one_line, output_transaction, same_path
from artefix.correction.record import SNR_SCOPES, CorrectionRecord
from artefix.correction.volume import correct_volume
from artefix.data.io import Volume, is_sample, read_input, write_volume
from artefix.errors import InputError, OutputError

_FILE_SUFFIXES = (".nii.gz", ".nii", ".npy", ".npz", ".h5", ".hdf5", ".png")
REPORT_SUFFIXES = (".html", ".htm")
RUNTIMES = ("torch", "onnx")
"""``runtime`` of :func:`correct_file` (``artefix correct --runtime``): what runs the model."""


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
    only: Sequence[str] | None = None,
    strength: Mapping[str, float] | None = None,
    ensemble: int | None = None,
    priors: bool = True,
    gates: bool = True,
    snr_scope: str = "scan",
    residuals: str | Path | None = None,
    report: str | Path | None = None,
    axis: int | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    key: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    runtime: str = "torch",
) -> CorrectionRun:
    """Correct a scan file and write the corrected scan (plus residuals, report and JSON summary).

    Args:
        input: NIfTI, DICOM series folder (or file), fastMRI ``.h5``, ``.npy``/``.npz`` or PNG, or
            ``sample:NAME``, a built-in sample slice (:func:`artefix.data.io.read_input`).
        output: Output path, see the module docstring for families.
        model: Shipped model name or ``.safetensors`` path (default :data:`DEFAULT_MODEL`).
        only: Heads to apply (None: all of the model's heads).
        strength: Head -> factor in ``[0, 1]`` for a partial correction (:func:`correct_volume`).
        ensemble: Self-ensemble size (1, 2, 4 or 8 dihedral transforms per slice) instead of the model
            card's (``ModelConfig.ensemble``): 1 is the fastest, 8 the most accurate.
        priors: Keep the model's physics priors (``ModelConfig.bias_smooth``, ``ModelConfig.noise_snr``,
            :mod:`artefix.models.priors`); False runs the heads as trained (e.g. to denoise a clean scan).
        gates: Let the model's artefact detector weight each residual (``ModelConfig.gates``); False applies
            each one in full (``InferencePolicy.gated`` false), for a scan known to have
            an artefact the detector scores low; its scores are still reported.
        snr_scope: ``"scan"``: the noise gate sees the scan's SNR (the median of its slices) on every slice;
            ``"slice"``: each slice's own (:func:`~artefix.correction.volume.correct_volume`).
        residuals: Folder for the residual volumes (created if missing; its parent must exist).
        report: ``.html`` QC report path; the JSON summary goes next to it (``.json``).
        axis: Slice axis (default: the header's acquisition axis, else the last).
        batch_size: Slices per model call (None: :func:`~artefix.correction.volume.auto_batch_size`).
        device: ``cpu`` or ``cuda`` (``cuda:1``, ...).
        overwrite: Replace existing outputs.
        key: Which array/series to read from a multi-array input (npz key, h5 dataset, SeriesInstanceUID).
        progress: ``progress(done, total)`` callback, in slices.
        runtime: ``"torch"`` (default) or ``"onnx"``: the model's correction runs in ONNX Runtime
            (:class:`artefix.models.onnx_runtime.OnnxModel`, exported once per slice size; needs
            ``pip install 'artefix[export]'``).

    Returns:
        The :class:`CorrectionRun`.

    Raises:
        InputError: Unreadable input, bad model, bad options (one-line message).
        OutputError: Unsafe or failed output (one-line message); nothing is left behind.
    """
    from artefix.correction.spec import ModelSpec
    from artefix.models.registry import check_device

    start = time.perf_counter()
    input_path, output_path = Path(input).expanduser(), Path(os.fspath(output)).expanduser()
    report_path = Path(report).expanduser() if report is not None else None
    residual_dir = Path(residuals).expanduser() if residuals is not None else None
    inputs = [] if is_sample(input_path) else [input_path]
    if inputs and not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    output_suffix(output_path)
    early = [output_path]
    if report_path is not None:
        if report_path.suffix.lower() not in REPORT_SUFFIXES:
            raise OutputError(f"{report_path}: the report must be an .html file")
        early += [report_path, report_path.with_suffix(".json")]
    check_outputs(early, overwrite=overwrite, inputs=inputs, folder_ok=_is_folder)
    if residual_dir is not None:
        if not residual_dir.parent.is_dir():
            raise OutputError(f"{residual_dir}: its parent folder {residual_dir.parent} does not exist")
        if residual_dir.exists() and not residual_dir.is_dir():
            raise OutputError(f"{residual_dir}: exists and is not a folder")
        check_writable(residual_dir, residual_dir if residual_dir.is_dir() else residual_dir.parent)
    check_device(device)  # before any reading: a bad device is a one-line error at once
    if snr_scope not in SNR_SCOPES:
        raise InputError(f"`snr_scope` must be one of {', '.join(SNR_SCOPES)}, got {snr_scope!r}")
    if runtime not in RUNTIMES:
        raise InputError(f"`runtime` must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx":
        from artefix.models.onnx_runtime import check_onnx_runtime

        check_onnx_runtime()

    t0 = time.perf_counter()
    volume = read_input(input_path, key=key)
    timings = {"read": time.perf_counter() - t0}
    _check_family(volume, output_path, "OUTPUT")

    t0 = time.perf_counter()
    net, card, policy = ModelSpec(model, device, ensemble, priors, gates).load()
    if runtime == "onnx":
        from artefix.models.onnx_runtime import OnnxModel

        net = OnnxModel(net, policy)
    timings["load_model"] = time.perf_counter() - t0
    heads = tuple(net.head_names)
    res_paths = residual_paths(output_path, residual_dir, heads) if residual_dir is not None else {}
    if res_paths:
        if residual_dir is not None and residual_dir.is_dir():
            check_outputs(list(res_paths.values()), overwrite=overwrite, inputs=inputs, folder_ok=_is_folder)
        for path in res_paths.values():
            if any(same_path(path, other) for other in early):
                raise OutputError(f"{path}: a residual volume would overwrite another output")

    with tempfile.TemporaryDirectory(prefix="artefix-residuals-") as scratch:
        t0 = time.perf_counter()
        result = correct_volume(
            volume,
            net,
            only=only,
            strength=strength,
            axis=axis,
            batch_size=batch_size,
            matrix=card.get("matrix"),
            keep_residuals=bool(res_paths),
            scratch_dir=Path(scratch) if res_paths else None,
            progress=progress,
            snr_scope=snr_scope,
            policy=policy,
        )
        timings["correct"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        summary = report_path.with_suffix(".json") if report_path is not None else None
        targets = [output_path, *res_paths.values(), *(p for p in (report_path, summary) if p is not None)]
        if residual_dir is not None and not residual_dir.exists():
            targets.append(residual_dir)  # made by this run: removed again should it fail
        with output_transaction(targets):
            write_volume(result.volume, output_path, overwrite=overwrite, like=volume)
            if residual_dir is not None and not residual_dir.exists():
                try:
                    residual_dir.mkdir()
                except OSError as exc:
                    raise OutputError(f"{residual_dir}: cannot create the residual folder ({one_line(exc)})") from exc
            for head, path in res_paths.items():
                write_volume(result.residuals[head], path, overwrite=overwrite, like=volume)
            timings["write"] = time.perf_counter() - t0
            timings["total"] = time.perf_counter() - start
            run = CorrectionRun(
                input=input_path,
                output=output_path,
                residual_paths=res_paths,
                report=report_path,
                summary=summary,
                model_card=card,
                record=result.record,
                timings=timings,
            )
            if report_path is not None:
                from artefix.correction.report import write_report

                write_report(run, volume, result.volume, overwrite=overwrite)
        del result
    return run
