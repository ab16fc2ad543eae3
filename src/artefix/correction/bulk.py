"""Correct many scans into a mirrored output tree (bulk ``artefix correct --out-dir``), resumably.

**Layout.** Each scan found in an input folder goes to the same relative path under the output folder, in the
input's family (NIfTI stays NIfTI, a DICOM series becomes a derived DICOM series folder); a scan given as an
input itself goes to ``DIR/NAME``. A folder holding several DICOM series gives ``DIR/REL/SERIES-UID/`` per
series. For a BIDS dataset the output folder is a BIDS-derivatives dataset: ``dataset_description.json``
(``DatasetType: derivative``, written once), the raw dataset's ``sub-*/[ses-*/]anat`` layout, and the
``desc-corrected`` entity in each name (``sub-01_T1w.nii.gz`` -> ``sub-01_desc-corrected_T1w.nii.gz``).

**Sidecars.** Next to each output a JSON sidecar (``NAME.json``, the scan suffix replaced: BIDS's own sidecar
convention) records the source, the model (name and checksum), the settings and the correction's QC summary
(:meth:`artefix.correction.record.CorrectionRecord.to_dict`). The output and its sidecar are written together,
atomically (:func:`artefix.atomic.output_transaction`), the sidecar last.

**Resume.** A scan whose output and sidecar both exist is finished and skipped: a rerun corrects only what is
missing (failed or interrupted scans) and writes nothing when everything is done. A finished scan corrected
with other settings is still skipped, and reported as such; ``overwrite`` corrects every scan again. An output
without its sidecar was not written by a finished run of artefix and is never replaced without ``overwrite``.

**Failures.** A scan that fails is reported with a one-line reason and leaves no output; the others go on. A
worker process killed while writing leaves no partial output either, only a hidden temporary, which the run
removes once every scan has ended.
``corrections.csv`` in the output folder lists every scan with its status, written whenever a run corrected
or failed at least one scan.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from artefix.atomic import atomic_file, one_line, output_transaction
from artefix.correction.options import InferenceOptions
from artefix.correction.spec import ModelSpec, loaded_model
from artefix.errors import ArtefixError, InputError, OutputError
from artefix.qc.discover import ScanRef, is_dicom_file

log = logging.getLogger(__name__)

DESC_ENTITY = "desc-corrected"
"""BIDS entity added to the name of each corrected image."""

SUMMARY_NAME = "corrections.csv"
"""Per-run status table in the output folder."""

STATUSES: tuple[str, ...] = ("corrected", "done before", "done before, other settings", "failed", "not flagged")
"""A scan's status in a bulk run: corrected now, finished by an earlier run (with the same or other settings),
failed, or left out by ``--only-flagged``."""

_SCAN_SUFFIXES = (".nii.gz", ".nii", ".npy", ".npz", ".h5", ".hdf5", ".png")


@dataclass(frozen=True)
class CorrectionOptions:
    """Per-scan options of :func:`artefix.correction.volume.correct_volume`.

    Attributes:
        only: Heads applied (None: all).
        strength: Head -> factor in ``[0, 1]`` as ``(head, factor)`` pairs (None: full).
        axis: Slice axis (None: the header's).
        batch_size: Slices per model call (None: automatic).
        snr_scope: ``"scan"`` or ``"slice"``.
    """

    only: tuple[str, ...] | None = None
    strength: tuple[tuple[str, float], ...] | None = None
    axis: int | None = None
    batch_size: int | None = None
    snr_scope: str = "scan"

    @classmethod
    def create(
        cls,
        *,
        only: Sequence[str] | None = None,
        strength: Mapping[str, float] | None = None,
        axis: int | None = None,
        batch_size: int | None = None,
        snr_scope: str = "scan",
    ) -> CorrectionOptions:
        """Build from a list of heads and a mapping of strengths."""
        return cls(
            None if only is None else tuple(only),
            None if strength is None else tuple(sorted((k, float(v)) for k, v in strength.items())),
            axis,
            batch_size,
            snr_scope,
        )

    @classmethod
    def of(
        cls, inference: InferenceOptions, *, axis: int | None = None, batch_size: int | None = None
    ) -> CorrectionOptions:
        """The per-scan part of ``inference`` (heads, strengths, SNR scope) with the slicing settings.

        The rest of ``inference`` (self-ensemble, priors, gates) goes with the model: :meth:`ModelSpec.of`.
        """
        return cls(inference.only, inference.strength, axis, batch_size, inference.snr_scope)


@dataclass(frozen=True)
class BulkTask:
    """One scan to correct.

    Attributes:
        ref: The scan.
        output: Output file, or folder for a DICOM series.
        sidecar: Its JSON sidecar.
        spec: The model.
        options: The correction options.
        settings: What the sidecar records as the settings (compared on a rerun).
        sources: The sidecar's ``Sources`` (a ``bids:raw:`` URI for BIDS, else the input's absolute path).
        overwrite: Replace an existing output and sidecar.
    """

    ref: ScanRef
    output: Path
    sidecar: Path
    spec: ModelSpec
    options: CorrectionOptions
    settings: dict[str, Any]
    sources: tuple[str, ...]
    overwrite: bool = False


@dataclass
class BulkResult:
    """The outcome for one scan.

    Attributes:
        ref: The scan.
        output: Its output path (None when not planned, e.g. ``not flagged``).
        status: One of :data:`STATUSES`.
        error: One-line reason of a failure.
        seconds: Wall time (read, correct, write).
    """

    ref: ScanRef
    output: Path | None
    status: str
    error: str = ""
    seconds: float = 0.0


@dataclass
class BulkRun:
    """What a bulk run did: one result per scan, in the order of the scans given.

    Attributes:
        results: Per scan.
        out_dir: The output folder.
        summary: ``corrections.csv`` when written, else None.
        seconds: Wall time.
    """

    results: list[BulkResult]
    out_dir: Path
    summary: Path | None = None
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """How many scans have ``status``."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[BulkResult]:
        """The scans that failed."""
        return [r for r in self.results if r.status == "failed"]


def _split_suffix(name: str) -> tuple[str, str]:
    lower = name.lower()
    for suffix in _SCAN_SUFFIXES:
        if lower.endswith(suffix):
            return name[: len(name) - len(suffix)], name[len(name) - len(suffix) :]
    return name, ""


def bids_derived_name(name: str) -> str:
    """``sub-01_ses-1_T1w.nii.gz`` -> ``sub-01_ses-1_desc-corrected_T1w.nii.gz`` (unchanged when it has a desc)."""
    stem, suffix = _split_suffix(name)
    entities, sep, label = stem.rpartition("_")
    if not sep or any(part.startswith("desc-") for part in entities.split("_")):
        return name
    return f"{entities}_{DESC_ENTITY}_{label}{suffix}"


def output_for(ref: ScanRef, out_dir: Path) -> Path:
    """Where a scan's correction goes under ``out_dir`` (see the module docstring)."""
    relative = Path(*ref.relative.parts)
    if ref.bids_root is not None:
        return out_dir / relative.parent / bids_derived_name(relative.name)
    if ref.key:
        return out_dir / relative / ref.key
    if ref.path.is_file() and is_dicom_file(ref.path):  # one DICOM file: a one-image series folder
        stem = relative.name[: -len(Path(relative.name).suffix)] if Path(relative.name).suffix else relative.name
        return out_dir / relative.parent / stem
    return out_dir / relative


def sidecar_for(output: Path) -> Path:
    """The JSON sidecar of an output: its scan suffix replaced by ``.json`` (a folder: ``NAME.json`` beside it)."""
    stem, _ = _split_suffix(output.name)
    return output.parent / f"{stem}.json"


def _is_dicom_output(ref: ScanRef) -> bool:
    return ref.path.is_dir() or is_dicom_file(ref.path)


def _within(path: Path, folder: Path) -> bool:
    path, folder = path.absolute().resolve(), folder.absolute().resolve()
    return path == folder or folder in path.parents


def check_out_dir(refs: Sequence[ScanRef], out_dir: Path, *, derivatives: bool) -> None:
    """Refuse an output folder inside an input folder, where a rerun would read the outputs as inputs.

    A BIDS dataset's ``derivatives/`` is fine as long as derivatives are not searched (``derivatives=False``).

    Raises:
        InputError: With a one-line reason.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")
    for root in sorted({r.root for r in refs if r.root is not None}):  # sorted: the same root named every run
        if not _within(out_dir, root):
            continue
        bids = next((r.bids_root for r in refs if r.root == root and r.bids_root is not None), None)
        if bids is not None and not derivatives:
            folder = bids / "derivatives"
            if _within(out_dir, folder) and out_dir.absolute().resolve() != folder.absolute().resolve():
                continue  # DATASET/derivatives/NAME: left out of the search
        raise InputError(
            f"`out_dir` {out_dir} is inside the input {root}: its outputs would be read as inputs "
            "(for BIDS use DATASET/derivatives/NAME, without `derivatives`)"
        )


def _settings(card: Mapping[str, Any], spec: ModelSpec, options: CorrectionOptions) -> dict[str, Any]:
    opts = asdict(options)
    opts["strength"] = None if options.strength is None else dict(options.strength)
    opts["only"] = None if options.only is None else list(options.only)
    return {
        "model": card.get("name"),
        "model_sha256": card.get("sha256"),
        "ensemble": spec.ensemble,
        "priors": spec.priors,
        "gates": spec.gates,
        **opts,
    }


def _read_sidecar_settings(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["artefix"]["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _outputs(refs: Sequence[ScanRef], out_dir: Path) -> list[Path]:
    """:func:`output_for` of every scan, each DICOM series alone in its folder.

    A DICOM series folder that would hold another scan's output moves into its own ``series`` subfolder.
    """
    outputs = [output_for(ref, out_dir) for ref in refs]
    parents = {p.absolute() for out in outputs for p in out.parents}
    return [
        out / "series" if _is_dicom_output(ref) and out.absolute() in parents else out
        for ref, out in zip(refs, outputs, strict=True)
    ]


def plan(
    refs: Sequence[ScanRef],
    out_dir: str | Path,
    *,
    spec: ModelSpec,
    options: CorrectionOptions,
    card: Mapping[str, Any],
    overwrite: bool = False,
    flagged: set[tuple[str, str]] | None = None,
) -> tuple[list[BulkTask], list[tuple[int, BulkResult]]]:
    """Which scans to correct, and the outcome of those that need no work.

    Args:
        refs: The scans.
        out_dir: Output folder.
        spec: The model.
        options: The correction options.
        card: The model's card (name and checksum for the sidecars).
        overwrite: Correct finished scans again.
        flagged: ``(abspath, series)`` of the scans to correct (``--only-flagged``); None: all.

    Returns:
        ``(tasks, settled)``: the scans to correct, and ``(index in refs, result)`` of the others (finished
        earlier, not flagged, or refused).

    Raises:
        InputError: Two scans that would be written to the same output.
    """
    out_dir = Path(out_dir).expanduser()
    settings = _settings(card, spec, options)
    tasks: list[BulkTask] = []
    settled: list[tuple[int, BulkResult]] = []
    claimed: dict[Path, str] = {}
    outputs = _outputs(refs, out_dir)
    for i, ref in enumerate(refs):
        if flagged is not None and ref.identity not in flagged:
            settled.append((i, BulkResult(ref, None, "not flagged")))
            continue
        output = outputs[i]
        sidecar = sidecar_for(output)
        for path in (output, sidecar):
            key = path.absolute()
            if key in claimed:
                raise InputError(f"{ref.label} and {claimed[key]} would both be written to {path}; correct them apart")
            claimed[key] = ref.label
        if not overwrite and output.exists():
            if not sidecar.is_file():
                error = f"{output}: exists but has no sidecar {sidecar.name} of a finished run; `overwrite` replaces it"
                settled.append((i, BulkResult(ref, output, "failed", error)))
                continue
            before = _read_sidecar_settings(sidecar)
            status = "done before" if before == json.loads(json.dumps(settings)) else "done before, other settings"
            settled.append((i, BulkResult(ref, output, status)))
            continue
        if ref.bids_root is not None:
            sources: tuple[str, ...] = (f"bids:raw:{ref.relative.as_posix()}",)
        else:
            sources = (ref.identity[0],)
        tasks.append(BulkTask(ref, output, sidecar, spec, options, settings, sources, overwrite=True))
    return tasks, settled


def correct_scan(task: BulkTask) -> BulkResult:
    """Correct one scan and write its output and sidecar; a failure is returned, never raised.

    Args:
        task: The scan, its output paths, the model and options.
    """
    from artefix import __version__
    from artefix.correction.volume import correct_volume
    from artefix.data.io import read_volume, write_volume

    start = time.perf_counter()
    ref = task.ref
    try:
        net, card, policy = loaded_model(task.spec)
        volume = read_volume(ref.path, key=ref.key)
        opts = task.options
        result = correct_volume(
            volume,
            net,
            only=None if opts.only is None else list(opts.only),
            strength=None if opts.strength is None else dict(opts.strength),
            axis=opts.axis,
            batch_size=opts.batch_size,
            matrix=card.get("matrix"),
            snr_scope=opts.snr_scope,
            policy=policy,
        )
        sidecar = {
            "Description": "Artefact correction (bias field, subsampling, motion, noise) by artefix",
            "Sources": list(task.sources),
            "artefix": {
                "version": __version__,
                "input": ref.given,
                "series": ref.key,
                "settings": task.settings,
                "correction": result.record.to_dict() if result.record is not None else None,
            },
        }
        target = os.fspath(task.output) + (os.sep if _is_dicom_output(ref) else "")
        try:
            task.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{task.output.parent}: cannot create the folder ({one_line(exc)})") from exc
        with output_transaction([task.output, task.sidecar]):
            write_volume(result.volume, target, overwrite=task.overwrite, like=volume)
            with atomic_file(task.sidecar) as tmp:
                tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        return BulkResult(ref, task.output, "corrected", seconds=time.perf_counter() - start)
    except ArtefixError as exc:
        error = one_line(exc)
    except Exception as exc:  # noqa: BLE001 - one scan's failure is reported, the others go on
        log.debug("%s: failed", ref.label, exc_info=True)
        error = f"{type(exc).__name__}: {one_line(exc)}"
    return BulkResult(ref, task.output, "failed", error, time.perf_counter() - start)


def _write_dataset_description(out_dir: Path, refs: Iterable[ScanRef]) -> None:
    """``dataset_description.json`` of a BIDS-derivatives output, written once (kept when it exists)."""
    from artefix import __version__

    path = out_dir / "dataset_description.json"
    roots = sorted({r.bids_root for r in refs if r.bids_root is not None})
    if not roots or path.exists():
        return
    raw: dict[str, Any] = {}
    try:
        raw = json.loads((roots[0] / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    description = {
        "Name": f"artefix corrections of {raw.get('Name', roots[0].name)}",
        "BIDSVersion": raw.get("BIDSVersion", "1.9.0"),
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "artefix",
                "Version": __version__,
                "Description": "MRI artefact correction (bias field, subsampling, motion, noise), one multi-task model",
            }
        ],
        "SourceDatasets": [{"URL": root.absolute().resolve().as_uri()} for root in roots],
        "DatasetLinks": {"raw": roots[0].absolute().resolve().as_uri()},
    }
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


def _remove_temporaries(tasks: Sequence[BulkTask]) -> None:
    """Remove what a worker killed while writing left next to this run's outputs (hidden temporaries).

    A killed process cannot clean up after itself: its atomic writes (:mod:`artefix.atomic`) leave a hidden
    ``.NAME.<hex>.tmp...`` file or folder, or a ``.NAME.<hex>.old`` copy put aside, never a partial output.
    """
    removed = 0
    for task in tasks:
        for path in (task.output, task.sidecar):
            pattern = re.compile(rf"^\.{re.escape(path.name)}\.[0-9a-z_]+\.(?:tmp.*|old)$")
            if not path.parent.is_dir():
                continue
            for entry in path.parent.glob(f".{glob.escape(path.name)}.*"):
                if pattern.match(entry.name):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
    if removed:
        log.warning("removed %d temporaries that interrupted writes left behind", removed)


def write_summary(path: Path, results: Sequence[BulkResult]) -> None:
    """``corrections.csv``: path, series, output, status, error, seconds per scan, atomically."""
    import csv

    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "series", "output", "status", "error", "seconds"])
        for r in results:
            seconds = f"{r.seconds:.3f}" if r.status in ("corrected", "failed") else ""
            writer.writerow(
                [r.ref.given, r.ref.key or "", "" if r.output is None else r.output, r.status, r.error, seconds]
            )


def run_bulk(
    refs: Sequence[ScanRef],
    out_dir: str | Path,
    *,
    spec: ModelSpec | None = None,
    options: CorrectionOptions | None = None,
    jobs: int = 1,
    scheduler: Any = None,
    overwrite: bool = False,
    flagged: set[tuple[str, str]] | None = None,
    derivatives: bool = False,
    progress: Callable[[BulkResult], None] | None = None,
    planned: Callable[[int], None] | None = None,
) -> BulkRun:
    """Correct every scan that is not finished yet into ``out_dir`` (created with its parents when missing).

    Args:
        refs: The scans (:func:`artefix.qc.discover.discover`).
        out_dir: Output folder.
        spec: Model (default: the default model, CPU).
        options: Correction options.
        jobs: Worker processes (1: this process).
        scheduler: A Dask scheduler's address or ``distributed.Client`` to run the scans on instead
            (:func:`artefix.parallel.run_dask`).
        overwrite: Correct finished scans again, replacing their outputs.
        flagged: Only these ``(abspath, series)`` (:func:`artefix.qc.table.read_flagged`); None: all.
        derivatives: The scans include BIDS derivatives (then ``out_dir`` may not lie in ``derivatives/``).
        progress: Called in this process with each corrected or failed scan's result.
        planned: Called once with the number of scans to correct, before the first.

    Returns:
        The :class:`BulkRun`.

    Raises:
        InputError: A bad model or device, an output folder inside an input, two scans with one output.
        OutputError: The output folder cannot be created.
    """
    from artefix.parallel import dask_client, run_tasks

    start = time.perf_counter()
    spec = spec or ModelSpec()
    options = options or CorrectionOptions()
    out_dir = Path(out_dir).expanduser()
    check_out_dir(refs, out_dir, derivatives=derivatives)
    _, card, _ = loaded_model(spec)  # a bad model or device stops the run before any scan
    tasks, settled = plan(refs, out_dir, spec=spec, options=options, card=card, overwrite=overwrite, flagged=flagged)
    results: list[BulkResult | None] = [None] * len(refs)
    for i, result in settled:
        results[i] = result
    if planned is not None:
        planned(len(tasks))
    index = [i for i, r in enumerate(results) if r is None]

    def done(k: int, result: BulkResult) -> None:
        results[index[k]] = result
        if progress is not None:
            progress(result)

    def lost(k: int, reason: str) -> None:
        task = tasks[k]
        done(k, BulkResult(task.ref, task.output, "failed", reason))

    with dask_client(scheduler if tasks else None) as client:  # connected before anything is written
        if tasks:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{out_dir}: cannot create the output folder ({one_line(exc)})") from exc
            _write_dataset_description(out_dir, refs)
        run_tasks(correct_scan, tasks, jobs=jobs, scheduler=client, on_result=done, on_lost=lost)
    _remove_temporaries(tasks)  # every task has ended: what is left is from killed writers
    final = [r if r is not None else BulkResult(refs[i], None, "failed", "not run") for i, r in enumerate(results)]
    run = BulkRun(final, out_dir, seconds=time.perf_counter() - start)
    if tasks or run.failed:
        if out_dir.is_dir():
            run.summary = out_dir / SUMMARY_NAME
            write_summary(run.summary, final)
    return run


__all__ = [
    "DESC_ENTITY",
    "STATUSES",
    "SUMMARY_NAME",
    "BulkResult",
    "BulkRun",
    "BulkTask",
    "CorrectionOptions",
    "bids_derived_name",
    "check_out_dir",
    "correct_scan",
    "output_for",
    "plan",
    "run_bulk",
    "sidecar_for",
]
