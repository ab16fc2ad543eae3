"""The QC tables: one row per scan (``qc.csv``, ``qc.parquet``) and one per slice (``slices.csv``).

``qc.csv`` columns, in order (:data:`SCAN_COLUMNS`):

* ``path``: the scan's path as given (the input as typed, joined with the path below it);
* ``bias``, ``subsampling``, ``motion``, ``noise``: scan-level artefact scores in ``[0, 1]``, higher = more
  likely present (:mod:`artefix.qc.measure`: the 90th percentile of the counted slices' detector scores);
* ``snr_db``: the estimated SNR in dB of the paper's noise artefact (:func:`artefix.models.snr.noise_corrected_snr_db`,
  the median of the counted slices); ``gate_snr_db``: the SNR the noise gate reads (paper's definition with the
  noisy image's ``S``, 2-7 dB higher; :mod:`artefix.qc.measure`); ``kspace_rows``, ``kspace_cols``: measured
  fractions of k-space; ``acceleration``: ``1 / sqrt(rows * cols)``;
* ``bias_flag`` ... ``noise_flag``: score at least its threshold; ``flagged``: any of them; ``flags``: the
  flagged artefacts, ``;``-separated;
* ``worst_slices``: ``;``-separated slice indices, worst first; ``slices``, ``counted_slices``;
* ``series``, ``series_description`` (DICOM folders holding several series), ``format``, ``shape``
  (``;``-separated), ``slice_axis``, ``abspath`` (absolute path, what ``--only-flagged`` matches), ``error``
  (why the scan could not be checked; its other columns are then empty), ``seconds``.

Numbers are written with 6 significant digits, missing values as empty cells, booleans as ``True``/``False``.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from artefix.atomic import atomic_file
from artefix.errors import InputError
from artefix.qc.discover import ScanRef
from artefix.qc.measure import HEADS, ScanQC

log = logging.getLogger(__name__)

SCAN_COLUMNS: tuple[str, ...] = (
    "path",
    *HEADS,
    "snr_db",
    "gate_snr_db",
    "kspace_rows",
    "kspace_cols",
    "acceleration",
    *(f"{h}_flag" for h in HEADS),
    "flagged",
    "flags",
    "worst_slices",
    "slices",
    "counted_slices",
    "series",
    "series_description",
    "format",
    "shape",
    "slice_axis",
    "abspath",
    "error",
    "seconds",
)
SLICE_COLUMNS: tuple[str, ...] = (
    "path",
    "series",
    "slice",
    *HEADS,
    "snr_db",
    "gate_snr_db",
    "kspace_rows",
    "kspace_cols",
    "foreground",
    "constant",
    "counted",
)


NUMBERS = ("snr_db", "gate_snr_db", "kspace_rows", "kspace_cols", "acceleration", "seconds")
"""The float columns besides the scores."""


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def scan_row(
    ref: ScanRef,
    qc: ScanQC | None,
    thresholds: Mapping[str, float],
    *,
    error: str | None = None,
    fmt: str = "",
    seconds: float | None = None,
    worst: Sequence[int] = (),
) -> dict[str, Any]:
    """The ``qc.csv`` row of a scan (typed values: float/int/bool/str or None), keys :data:`SCAN_COLUMNS`."""
    row: dict[str, Any] = dict.fromkeys(SCAN_COLUMNS)
    row.update(
        path=ref.given,
        series=ref.key or "",
        series_description=ref.series_description,
        format=fmt,
        abspath=ref.identity[0],
        error=error or "",
        seconds=None if seconds is None else round(float(seconds), 3),
    )
    if qc is None:
        return row
    scores = qc.scores()
    flags = qc.flags(thresholds)
    fraction = qc.kspace_fraction()
    row.update({h: _finite(scores[h]) for h in HEADS})
    row.update({f"{h}_flag": flags[h] for h in HEADS})
    row.update(
        snr_db=_finite(qc.snr()),
        gate_snr_db=_finite(qc.scan_gate_snr()),
        kspace_rows=None if fraction is None else fraction[0],
        kspace_cols=None if fraction is None else fraction[1],
        acceleration=_finite(qc.acceleration()),
        flagged=any(bool(f) for f in flags.values()),
        flags=";".join(h for h in HEADS if flags[h]),
        worst_slices=";".join(str(z) for z in worst),
        slices=qc.n_slices,
        counted_slices=int(qc.counted().sum()),
        shape=";".join(str(s) for s in qc.shape),
        slice_axis=qc.axis,
    )
    return row


def slice_rows(ref: ScanRef, qc: ScanQC) -> list[dict[str, Any]]:
    """The ``slices.csv`` rows of a scan, one per slice, keys :data:`SLICE_COLUMNS`."""
    counted = qc.counted()
    rows = []
    for z in range(qc.n_slices):
        row: dict[str, Any] = {"path": ref.given, "series": ref.key or "", "slice": z}
        for head in HEADS:
            value = None
            if qc.detection is not None and head in qc.heads:
                value = _finite(qc.detection[z, qc.heads.index(head)])
            row[head] = value
        row.update(
            snr_db=_finite(qc.snr_db[z]),
            gate_snr_db=_finite(qc.gate_snr[z]),
            kspace_rows=_finite(qc.kspace[z, 0]),
            kspace_cols=_finite(qc.kspace[z, 1]),
            foreground=bool(qc.foreground[z]),
            constant=bool(qc.constant[z]),
            counted=bool(counted[z]),
        )
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` to ``path`` (UTF-8, header line, ``columns`` order), atomically."""
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])


def parquet_available() -> bool:
    """Whether pyarrow can be imported (``qc.parquet`` is written only then)."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` to a Parquet file at ``path`` atomically (needs pyarrow: :func:`parquet_available`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"path": pa.string(), "slices": pa.int64(), "counted_slices": pa.int64(), "slice_axis": pa.int64()}
    for column in columns:
        if column in HEADS or column in NUMBERS:
            types[column] = pa.float64()
        elif column.endswith("_flag") or column == "flagged":
            types[column] = pa.bool_()
        else:
            types.setdefault(column, pa.string())
    schema = pa.schema([(c, types[c]) for c in columns])
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows], schema=schema)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def read_flagged(path: str | Path) -> set[tuple[str, str]]:
    """The scans a QC run flagged: ``(abspath, series)`` of every ``qc.csv`` row with ``flagged`` True.

    Raises:
        InputError: A missing or unreadable file, or one without the ``abspath``, ``series`` and ``flagged``
            columns of ``artefix qc``.
    """
    path = Path(path).expanduser()
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"abspath", "series", "flagged"} - set(reader.fieldnames or ())
            if missing:
                raise InputError(f"{path}: not a qc.csv of 'artefix qc' (no {', '.join(sorted(missing))} column)")
            return {(row["abspath"], row["series"] or "") for row in reader if row["flagged"] == "True"}
    except OSError as exc:
        raise InputError(f"{path}: cannot read the QC table ({exc.strerror or exc})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from exc
