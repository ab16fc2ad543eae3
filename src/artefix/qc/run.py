"""``artefix qc``: check many scans and write ``qc.csv``, ``qc.parquet``, ``slices.csv`` and ``index.html``.

Each scan is read and measured on its own (:func:`qc_scan`, in this process or in worker processes:
:func:`artefix.parallel.run_tasks`); a scan that cannot be read or checked becomes a row with an ``error`` and
no numbers, and the others go on. The outputs are written at the end, each atomically and all or nothing
(:func:`artefix.atomic.output_transaction`); they are checked before any scan is read, so a run that would
overwrite earlier outputs without ``overwrite`` stops at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artefix.atomic import check_outputs, one_line, output_transaction
from artefix.correction.spec import ModelSpec, loaded_model
from artefix.errors import ArtefixError, OutputError
from artefix.qc import cache
from artefix.qc.discover import ScanRef
from artefix.qc.measure import WORST_SLICES, ScanQC, measure_volume, resolve_thresholds, slice_image
from artefix.qc.table import (
    SCAN_COLUMNS,
    SLICE_COLUMNS,
    parquet_available,
    scan_row,
    slice_rows,
    write_csv,
    write_parquet,
)

log = logging.getLogger(__name__)

OUTPUT_NAMES: tuple[str, ...] = ("qc.csv", "qc.parquet", "slices.csv", "index.html")


@dataclass(frozen=True)
class QCOptions:
    """How each scan is measured.

    Attributes:
        axis: Slice axis (None: the header's acquisition axis, as ``artefix correct``).
        batch_size: Slices per model call (None: automatic).
        snr_scope: SNR the noise score's gate sees: ``"scan"`` or ``"slice"``.
        thumbnails: Worst slices drawn per scan in the dashboard.
    """

    axis: int | None = None
    batch_size: int | None = None
    snr_scope: str = "scan"
    thumbnails: int = WORST_SLICES


@dataclass
class ScanResult:
    """What checking one scan gave.

    Attributes:
        ref: The scan.
        qc: Its numbers, or None when it failed.
        worst: Its worst slices, worst first.
        thumbnails: Slice index -> base64 PNG of the first ``QCOptions.thumbnails`` worst slices.
        error: One-line reason it failed, or None.
        format: The family it was read as (``nifti``, ``dicom``, ...), "" when unreadable.
        seconds: Wall time for this scan (read and measure).
    """

    ref: ScanRef
    qc: ScanQC | None = None
    worst: list[int] = field(default_factory=list)
    thumbnails: dict[int, str] = field(default_factory=dict)
    error: str | None = None
    format: str = ""
    seconds: float = 0.0


def qc_scan(task: tuple[ScanRef, ModelSpec, QCOptions]) -> ScanResult:
    """Read and measure one scan; any failure is returned as :attr:`ScanResult.error`, never raised.

    Args:
        task: ``(scan, model spec, options)`` (one picklable value, for worker processes).
    """
    from artefix.data.io import read_volume
    from artefix.qc.dashboard import thumbnail_png

    ref, spec, options = task
    start = time.perf_counter()
    try:
        net, card, policy = loaded_model(spec)
        volume = read_volume(ref.path, key=ref.key)
        qc = measure_volume(
            volume,
            net,
            axis=options.axis,
            batch_size=options.batch_size,
            matrix=card.get("matrix"),
            snr_scope=options.snr_scope,
            policy=policy,
        )
        worst = qc.worst_slices(max(WORST_SLICES, options.thumbnails))
        thumbs = {z: thumbnail_png(slice_image(volume, qc.axis, z)) for z in worst[: options.thumbnails]}
        return ScanResult(ref, qc, worst[:WORST_SLICES], thumbs, None, volume.format, time.perf_counter() - start)
    except ArtefixError as exc:
        error = one_line(exc)
    except Exception as exc:  # noqa: BLE001 - one scan's failure is its row, the others go on
        log.debug("%s: failed", ref.label, exc_info=True)
        error = f"{type(exc).__name__}: {one_line(exc)}"
    return ScanResult(ref, error=error, seconds=time.perf_counter() - start)


@dataclass
class QCRun:
    """What ``artefix qc`` did.

    Attributes:
        results: One per scan, in the order of the scans given.
        rows: The ``qc.csv`` rows, same order.
        outputs: The files written.
        thresholds: Artefact -> flag threshold used.
        model_card: Card of the model used.
        seconds: Wall time.
    """

    results: list[ScanResult]
    rows: list[dict[str, Any]]
    outputs: list[Path]
    thresholds: dict[str, float]
    model_card: dict[str, Any]
    seconds: float

    @property
    def failed(self) -> list[ScanResult]:
        """The scans that could not be checked."""
        return [r for r in self.results if r.error]


def output_paths(out: Path) -> dict[str, Path]:
    """Name -> path of every output in the folder ``out`` (:data:`OUTPUT_NAMES`)."""
    return {name: out / name for name in OUTPUT_NAMES}


def check_qc_outputs(out: str | Path, *, overwrite: bool) -> Path:
    """Refuse unsafe outputs before any work: a missing parent folder, ``out`` a file, existing outputs.

    Returns:
        ``out`` as a Path.

    Raises:
        OutputError: With a one-line reason.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if not out.exists():
        if not out.absolute().parent.is_dir():
            raise OutputError(f"{out}: its parent folder {out.absolute().parent} does not exist")
        return out
    check_outputs(list(output_paths(out).values()), overwrite=overwrite)
    return out


def run_qc(
    refs: Sequence[ScanRef],
    out: str | Path,
    *,
    spec: ModelSpec | None = None,
    options: QCOptions | None = None,
    thresholds: float | Mapping[str, float] | None = None,
    jobs: int = 1,
    scheduler: Any = None,
    overwrite: bool = False,
    progress: Callable[[ScanResult], None] | None = None,
    resume: bool = False,
) -> QCRun:
    """Check every scan and write the QC outputs into the folder ``out`` (created when missing).

    Args:
        refs: The scans (:func:`artefix.qc.discover.discover`).
        out: Output folder; its parent must exist.
        spec: Model to use (default: the default model, CPU).
        options: How each scan is measured.
        thresholds: Flag threshold(s), see :func:`artefix.qc.measure.resolve_thresholds`.
        jobs: Worker processes (1: this process).
        scheduler: A Dask scheduler's address or ``distributed.Client`` to run the scans on instead
            (:func:`artefix.parallel.run_dask`; the outputs are the same as a local run's).
        overwrite: Replace earlier outputs in ``out``.
        progress: Called in this process with each scan's result as it completes (or is taken from an
            earlier run).
        resume: Take every scan an earlier run in ``out`` measured (same file, model and options) from
            there and measure only the others (:mod:`artefix.qc.cache`); the outputs are replaced. Each
            scan measured now is kept there too, whether or not ``resume`` is given.

    Returns:
        The :class:`QCRun` (outputs written even when some scans failed).

    Raises:
        InputError: A bad model, device or threshold (before any scan is read).
        OutputError: Unsafe or failed outputs; nothing is left behind.
    """
    start = time.perf_counter()
    spec = spec or ModelSpec()
    options = options or QCOptions()
    limits = resolve_thresholds(thresholds)
    out = check_qc_outputs(out, overwrite=overwrite or resume)
    _, card, _ = loaded_model(spec)  # a bad model or device is an error for the whole run, before any scan
    keys = [cache.scan_key(ref, str(card.get("sha256") or spec.model), options) for ref in refs]
    results: list[ScanResult | None] = [None] * len(refs)
    if resume:
        for i, (ref, key) in enumerate(zip(refs, keys, strict=True)):
            results[i] = cache.load(out, key, ref) if key is not None else None
        kept = [r for r in results if r is not None]
        log.info("%d of %d scans taken from the earlier run in %s", len(kept), len(refs), out)
        for result in kept:
            if progress is not None:
                progress(result)
    todo = [i for i, r in enumerate(results) if r is None]

    def done(j: int, result: ScanResult) -> None:
        i = todo[j]
        results[i] = result
        if keys[i] is not None:
            cache.save(out, keys[i], result)
        if progress is not None:
            progress(result)

    def lost(j: int, reason: str) -> None:
        done(j, ScanResult(refs[todo[j]], error=reason))

    from artefix.parallel import dask_client, run_tasks

    tasks = [(refs[i], spec, options) for i in todo]
    with dask_client(scheduler) as client:  # connected before anything is written
        run_tasks(qc_scan, tasks, jobs=jobs, scheduler=client, on_result=done, on_lost=lost)
    final = [r if r is not None else ScanResult(refs[i], error="not run") for i, r in enumerate(results)]
    rows = [scan_row(r.ref, r.qc, limits, error=r.error, fmt=r.format, seconds=r.seconds, worst=r.worst) for r in final]
    meta = {
        "model": card.get("name"),
        "sha256": (card.get("sha256") or "")[:12],
        "device": spec.device,
        "thresholds": ", ".join(f"{h} {v:g}" for h, v in limits.items()),
        "artefix": _version(),
    }
    outputs = _write_outputs(out, final, rows, limits, meta)
    return QCRun(final, rows, outputs, limits, dict(card), time.perf_counter() - start)


def _version() -> str:
    from artefix import __version__

    return __version__


def _write_outputs(
    out: Path, results: Sequence[ScanResult], rows: Sequence[dict[str, Any]], limits: Mapping[str, float], meta: dict
) -> list[Path]:
    from artefix.qc.dashboard import render_dashboard, write_dashboard

    paths = output_paths(out)
    parquet = parquet_available()
    if not parquet:
        log.warning("qc.parquet not written: pyarrow is not installed (pip install pyarrow); qc.csv has the same table")
    html = render_dashboard(rows, [r.thumbnails for r in results], limits, meta)
    created = not out.exists()
    targets = ([out] if created else []) + list(paths.values())  # qc.parquet too: a stale one goes
    with output_transaction(targets):
        if created:
            try:
                out.mkdir()
            except OSError as exc:
                raise OutputError(f"{out}: cannot create the output folder ({one_line(exc)})") from exc
        write_csv(paths["qc.csv"], rows, SCAN_COLUMNS)
        if parquet:
            write_parquet(paths["qc.parquet"], rows, SCAN_COLUMNS)
        write_csv(
            paths["slices.csv"],
            (s for r in results if r.qc is not None for s in slice_rows(r.ref, r.qc)),
            SLICE_COLUMNS,
        )
        write_dashboard(paths["index.html"], html)
    return [p for name, p in paths.items() if parquet or name != "qc.parquet"]
