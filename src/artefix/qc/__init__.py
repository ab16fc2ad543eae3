"""Quality control of many scans (``artefix qc``): which scans have which artefact, and how badly.

* :mod:`artefix.qc.discover`: the scans in files, folders, BIDS datasets and DICOM trees (:class:`ScanRef`).
* :mod:`artefix.qc.measure`: the numbers of one scan, per slice and per scan (:class:`ScanQC`).
* :mod:`artefix.qc.table`: ``qc.csv`` / ``qc.parquet`` (one row per scan) and ``slices.csv`` (one per slice).
* :mod:`artefix.qc.dashboard`: ``index.html``, a self-contained, sortable and filterable dashboard.
* :mod:`artefix.qc.run`: :func:`run_qc`, all of it over many scans, in worker processes if asked.

Example:
    >>> from artefix.qc import discover, run_qc                             # doctest: +SKIP
    >>> run = run_qc(discover(["bids_dataset/"]), "qc_out", jobs=2)          # doctest: +SKIP
    >>> [row["path"] for row in run.rows if row["flagged"]]                 # doctest: +SKIP
"""

from artefix.qc.discover import ScanRef, discover
from artefix.qc.measure import DEFAULT_THRESHOLD, HEADS, SCAN_PERCENTILE, ScanQC, measure_volume, resolve_thresholds
from artefix.qc.run import QCOptions, QCRun, ScanResult, qc_scan, run_qc

__all__ = [
    "DEFAULT_THRESHOLD",
    "HEADS",
    "SCAN_PERCENTILE",
    "QCOptions",
    "QCRun",
    "ScanQC",
    "ScanRef",
    "ScanResult",
    "discover",
    "measure_volume",
    "qc_scan",
    "resolve_thresholds",
    "run_qc",
]
