"""Resumable ``artefix qc``: every measured scan is kept in the output folder as soon as it is done.

A QC run over an archive takes hours; an interruption (a killed job, a lost node, Ctrl-C) must not cost the
scans already measured, and a rerun over a grown dataset should measure only the new scans. Each scan that
was checked without error is written, atomically, to ``DIR/.artefix-qc/<key>.json`` (one small file per
scan: its numbers, worst slices and thumbnails). ``artefix qc --resume`` takes every scan whose entry
matches from there and measures the rest; the tables and the dashboard are then written from all of them.

An entry matches when the scan, the model and the options are the same: the key hashes the scan's path and
series, its file fingerprint (size and modification time of the file, or of every file of a DICOM folder),
the model's checksum and the measuring options. A changed file, another model or another ``--axis`` is
measured again. Scans that failed are not kept, so a rerun tries them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artefix.atomic import atomic_file
from artefix.qc.measure import ScanQC

if TYPE_CHECKING:
    from artefix.qc.discover import ScanRef
    from artefix.qc.run import QCOptions, ScanResult

log = logging.getLogger(__name__)

CACHE_DIR = ".artefix-qc"
"""The folder in the QC output folder that holds one entry per measured scan."""
FORMAT = 2
"""Version of an entry's layout; an entry of another version is measured again (2: the noise-corrected ``snr_db``
and the gate's ``gate_snr``, where 1 had only the gate's reading under ``snr_db``)."""


def cache_dir(out: Path) -> Path:
    """``out / .artefix-qc``."""
    return Path(out) / CACHE_DIR


def fingerprint(path: Path) -> list[Any]:
    """What changes when a scan's data change: ``[size, mtime_ns]`` of a file, or of every file in a folder.

    Raises:
        OSError: When the path cannot be read.
    """
    path = Path(path)
    if path.is_file():
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    files = []
    for root, _dirs, names in os.walk(path):
        for name in names:
            st = (Path(root) / name).stat()
            files.append([str(Path(root, name).relative_to(path)), st.st_size, st.st_mtime_ns])
    return sorted(files)


def scan_key(ref: ScanRef, model_sha256: str, options: QCOptions) -> str | None:
    """The entry name of ``ref`` measured by that model with those options (None: the scan is unreadable)."""
    try:
        stamp = fingerprint(ref.path)
    except OSError:
        return None
    doc = {"scan": ref.identity, "data": stamp, "model": model_sha256, "options": asdict(options)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def _array(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def save(out: Path, key: str, result: ScanResult) -> None:
    """Keep ``result`` (a scan measured without error) as the entry ``key`` in ``out``; atomic.

    A failure to write is logged, not raised: the run goes on, the scan is only not resumable.
    """
    qc = result.qc
    if qc is None or result.error:
        return
    doc = {
        "format": FORMAT,
        "label": result.ref.label,
        "file_format": result.format,
        "seconds": result.seconds,
        "worst": [int(z) for z in result.worst],
        "thumbnails": {str(z): png for z, png in result.thumbnails.items()},
        "qc": {
            "heads": list(qc.heads),
            "axis": qc.axis,
            "shape": list(qc.shape),
            "work_shape": list(qc.work_shape),
            "detection": None if qc.detection is None else qc.detection.tolist(),
            "snr_db": qc.snr_db.tolist(),
            "gate_snr": qc.gate_snr.tolist(),
            "kspace": qc.kspace.tolist(),
            "constant": qc.constant.astype(bool).tolist(),
            "foreground": qc.foreground.astype(bool).tolist(),
            "gate_snr_db": qc.gate_snr_db,
        },
    }
    folder = cache_dir(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(folder / f"{key}.json") as tmp:
            tmp.write_text(json.dumps(doc))
    except OSError as exc:
        log.warning("%s: not kept for --resume (%s)", result.ref.label, exc)


def load(out: Path, key: str, ref: ScanRef) -> ScanResult | None:
    """The kept result of ``ref`` under ``key``, or None when there is none (or it is unreadable)."""
    from artefix.qc.run import ScanResult

    path = cache_dir(out) / f"{key}.json"
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            return None
        q = doc["qc"]
        qc = ScanQC(
            heads=tuple(q["heads"]),
            axis=q["axis"],
            shape=tuple(q["shape"]),
            work_shape=(int(q["work_shape"][0]), int(q["work_shape"][1])),
            detection=_array(q["detection"]),
            snr_db=_array(q["snr_db"]),
            gate_snr=_array(q["gate_snr"]),
            kspace=_array(q["kspace"]),
            constant=np.asarray(q["constant"], dtype=bool),
            foreground=np.asarray(q["foreground"], dtype=bool),
            gate_snr_db=q["gate_snr_db"],
        )
        thumbnails = {int(z): png for z, png in doc["thumbnails"].items()}
        return ScanResult(ref, qc, list(doc["worst"]), thumbnails, None, doc["file_format"], float(doc["seconds"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
