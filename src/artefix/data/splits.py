"""Find scans on disk and split them by patient into train / validation / test sets, written to a file.

Slices of one patient are strongly correlated (same anatomy, same scanner, often several contrasts and
time points), so a split by slice or by file leaks the validation set into training. Here every file is
mapped to a patient ID (:class:`PatientRule`), whole patients are shuffled with a seeded NumPy
generator and dealt out by the requested fractions (:func:`make_split`), and the result is written as
human-readable JSON (:meth:`Split.save`) so that validation numbers stay comparable across runs.

Example:
    >>> from artefix.data.splits import discover_scans, make_split  # doctest: +SKIP
    >>> files = discover_scans("../shared/data/open_ms_data_ljubljana_longitudinal")  # doctest: +SKIP
    >>> split = make_split(files, (0.7, 0.1, 0.2), seed=0)  # doctest: +SKIP
    >>> split.save("splits/brain.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from artefix.data.io import has_dicom_preamble
from artefix.errors import InputError

SET_NAMES: tuple[str, str, str] = ("train", "val", "test")
#: The paper's brain split (train, validation, test).
BRAIN_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)
#: The paper's pelvis split: no test set.
PELVIS_FRACTIONS: tuple[float, float, float] = (0.8, 0.2, 0.0)

#: What a subject folder looks like: optional letter groups (``patient``, ``sub-``, ``ProstateX-``,
#: ``UPENN-GBM-``), then digits, then optional ``-digits``/``_digits`` groups. Matches ``patient01``,
#: ``sub-01``, ``ProstateX-0000``, ``case_00012``, ``BraTS2021_00000``, ``TCGA-02-0003``, ``100307``;
#: does not match collection folders such as ``open_ms_data_ljubljana_longitudinal`` or
#: ``ixi_t1_2mm_via_nichart``. Written without nested quantifiers (no catastrophic backtracking).
SUBJECT_FOLDER_PATTERN = r"^[A-Za-z]*(?:[-_][A-Za-z]+)*[-_]?\d+(?:[-_]\d+)*$"

#: Folders that match :data:`SUBJECT_FOLDER_PATTERN` but hold one visit or one contrast of many subjects, not
#: one subject: a leading word for a session (``visit1``, ``ses-02``, ``study1``, ``session_3``, ``scan2``,
#: ``series5``, ``run-1``, ``tp2``) or a trailing MR contrast (``IXI-T1``, ``T2``, ``flair_3``). Never patients.
NOT_SUBJECT_PATTERN = (
    r"^(?:visit|ses|session|study|scan|series|run|tp|timepoint)[-_]?\d"
    r"|(?:^|[-_])(?:t1w?|t2w?|pdw?|flair|dwi|adc)(?:[-_]\d+)?$"
)

SCAN_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".h5", ".hdf5", ".npy", ".npz")
_DICOM_SUFFIXES = (".dcm", ".ima")
SPLIT_FORMAT = "artefix-split/1"


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _stem(path: Path) -> str:
    suffix = _suffix(path)
    name = path.name
    return name[: len(name) - len(suffix)] if suffix in SCAN_SUFFIXES + _DICOM_SUFFIXES else name


def _is_dicom_file(path: Path) -> bool:
    if _suffix(path) in _DICOM_SUFFIXES:
        return True
    return has_dicom_preamble(path)


def _is_dicom_series(folder: Path, files: Sequence[str]) -> bool:
    """A folder is a DICOM series when it holds at least one file and all its (visible) files are DICOM."""
    visible = [name for name in files if not name.startswith(".")]
    return bool(visible) and all(_is_dicom_file(folder / name) for name in visible)


def discover_scans(roots: str | Path | Iterable[str | Path]) -> list[Path]:
    """List every scan under ``roots``: NIfTI, fastMRI HDF5 and NumPy files, and DICOM series folders.

    A folder counts as one DICOM series when it holds at least one file and every visible file in it is
    DICOM (``.dcm``/``.ima`` suffix or the ``DICM`` preamble at byte 128); the folder itself is returned
    and not searched further. Hidden files and folders (name starting with ``.``) are skipped. A root may
    itself be a scan file or a series folder. A multi-array ``.npz`` is one scan (its default array, see
    :func:`artefix.data.io.read_volume`). Symbolic links to folders below a root are not followed.

    Args:
        roots: One folder/file or several.

    Returns:
        The scans, sorted and without duplicates.

    Raises:
        InputError: If a root does not exist.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    found: set[Path] = set()
    for root in (Path(r).expanduser() for r in roots):
        if not root.exists():
            raise InputError(f"{root}: no such file or folder to search for scans")
        if root.is_file():
            if _suffix(root) in SCAN_SUFFIXES:
                found.add(root)
            elif _is_dicom_file(root):
                found.add(root.parent)
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if _is_dicom_series(here, files):
                found.add(here)
                dirs[:] = []
                continue
            found.update(here / n for n in files if not n.startswith(".") and _suffix(Path(n)) in SCAN_SUFFIXES)
    return sorted(found)


def _relative_parts(path: Path, roots: Sequence[Path]) -> tuple[str, ...]:
    """Path components below the deepest root that contains ``path`` (all components if none does)."""
    best: tuple[str, ...] | None = None
    for root in roots:
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            continue
        if best is None or len(parts) < len(best):
            best = parts
    return best if best is not None else path.parts


@dataclass(frozen=True)
class PatientRule:
    """Maps a scan path to a patient ID.

    Default rule (``pattern=None``): take the path below the data root (the deepest of ``roots`` that
    contains the scan) and return the first *folder* whose name looks like a subject folder
    (:data:`SUBJECT_FOLDER_PATTERN`): ``patient01`` for ``open_ms_data_ljubljana_longitudinal/patient01/
    study1_T1W.nii.gz``, ``ProstateX-0000`` for ``ProstateX-0000/4.000000-t2tsetra-00702`` (the series
    folder itself is the scan, not a subject folder). When no folder qualifies (a flat folder of files),
    the scan's own name without a trailing contrast (``-T1``, ``_flair``) up to the first ``_`` is the ID
    (``IXI012-HH-1211`` for ``IXI012-HH-1211_T1.nii.gz`` and ``IXI012-HH-1211-T2.nii.gz``), provided that
    prefix contains a digit; otherwise the whole name without
    extension is used (``file_brain_AXT2_200_2000019.h5`` of fastMRI is one patient per file), which never
    merges unrelated subjects.

    Regex rule: ``pattern`` is searched (``re.search``) in the POSIX path relative to the root (the full
    path when no root contains the scan); the ID is the named group ``patient`` if present, else group 1,
    else the whole match. A scan the pattern does not match raises ``ValueError``.

    Attributes:
        roots: Data roots; give the folders passed to :func:`discover_scans`. Without roots the default
            rule searches the whole path, so prefer giving them.
        pattern: Optional regular expression, e.g. ``r"(sub-[^/_]+)"`` for BIDS.
    """

    roots: tuple[Path, ...] = ()
    pattern: str | None = None
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _subject: re.Pattern[str] = field(default=re.compile(SUBJECT_FOLDER_PATTERN), init=False, repr=False, compare=False)
    _contrast_suffix: re.Pattern[str] = field(
        default=re.compile(r"[-_](?:t1w?|t2w?|pdw?|flair|dwi|adc)(?:[-_]\d+)?$", re.IGNORECASE),
        init=False,
        repr=False,
        compare=False,
    )
    _not_subject: re.Pattern[str] = field(
        default=re.compile(NOT_SUBJECT_PATTERN, re.IGNORECASE), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(Path(r).expanduser().absolute() for r in self.roots))
        if self.pattern is not None:
            try:
                regex = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"patient pattern {self.pattern!r} is not a valid regex: {exc}") from None
            object.__setattr__(self, "_regex", regex)

    def describe(self) -> str:
        """One line for the split file saying how patient IDs were derived."""
        if self.pattern is not None:
            return f"regex {self.pattern!r} on the path below the root"
        return (
            f"first folder below the root matching {SUBJECT_FOLDER_PATTERN!r} (not a visit or contrast "
            f"folder: {NOT_SUBJECT_PATTERN!r}), "
            "else the file name up to the first '_' (when it holds a digit), else the file stem"
        )

    def __call__(self, path: str | Path) -> str:
        """The patient ID of ``path``."""
        path = Path(path).expanduser().absolute()
        parts = _relative_parts(path, self.roots)
        if self._regex is not None:
            text = "/".join(parts)
            match = self._regex.search(text)
            if match is None:
                raise ValueError(f"patient pattern {self.pattern!r} does not match {text!r}")
            if "patient" in self._regex.groupindex:
                return match.group("patient")
            return match.group(1) if self._regex.groups else match.group(0)
        for folder in parts[:-1]:
            if self._subject.match(folder) and not self._not_subject.search(folder):
                return folder
        stem = _stem(Path(parts[-1]) if parts else path)
        stem = self._contrast_suffix.sub("", stem) or stem  # IXI012-HH-1211-T1 and -T2: one subject
        prefix = stem.split("_", 1)[0]
        return prefix if prefix and any(c.isdigit() for c in prefix) else stem


def allocate(n_patients: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """Number of patients per set for ``fractions`` of ``n_patients``.

    Largest-remainder rounding of ``n * f_i`` (so the counts add up to ``n``), then every set with a
    non-zero fraction that got no patient takes one from the largest set, as long as that set keeps at
    least one. With 7 patients and 70/10/20 % this gives 5/1/1 (plain rounding would give 5/1/1 too, but
    4 patients give 2/1/1 instead of 3/0/1). When there are fewer patients than non-zero fractions, the
    sets with the largest fractions are served first (ties: train, then val, then test).

    Args:
        n_patients: How many patients, >= 1.
        fractions: One non-negative fraction per set; they must add up to 1.

    Returns:
        Counts, same length as ``fractions``, summing to ``n_patients``.
    """
    if n_patients < 1:
        raise ValueError(f"need at least one patient to split, got {n_patients}")
    f = np.asarray(fractions, dtype=float)
    if f.ndim != 1 or f.size == 0 or np.any(~np.isfinite(f)) or np.any(f < 0):
        raise ValueError(f"fractions must be non-negative numbers, got {tuple(fractions)}")
    if not np.isclose(f.sum(), 1.0, atol=1e-6):
        raise ValueError(f"fractions must add up to 1, got {tuple(fractions)} (sum {f.sum():.6g})")
    exact = f * n_patients
    counts = np.floor(exact).astype(int)
    order = sorted(range(f.size), key=lambda i: (-(exact[i] - counts[i]), -f[i], i))
    for i in order[: n_patients - int(counts.sum())]:
        counts[i] += 1
    by_size = sorted(range(f.size), key=lambda i: (-f[i], i))
    for i in by_size:
        if f[i] > 0 and counts[i] == 0:
            donor = max(range(f.size), key=lambda j: (counts[j], f[j], -j))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return tuple(int(c) for c in counts)


@dataclass(frozen=True)
class Split:
    """A patient-level train / validation / test split.

    Attributes:
        sets: ``{"train"|"val"|"test": {patient: (file, ...)}}``; file paths are POSIX strings, relative
            to ``root`` when a root is set.
        fractions: Requested fractions ``(train, val, test)``.
        seed: Seed of the patient shuffle.
        root: Folder the file paths are relative to (``None``: the paths are as given). In a split file it
            may itself be relative, to the file's folder (as the shipped splits keep it, so that no machine's
            absolute path is stored); :meth:`load` resolves it.
        rule: How patient IDs were derived (for the reader of the file).
    """

    sets: Mapping[str, Mapping[str, tuple[str, ...]]]
    fractions: tuple[float, float, float] = BRAIN_FRACTIONS
    seed: int = 0
    root: str | None = None
    rule: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.sets) - set(SET_NAMES)
        if unknown:
            raise ValueError(f"unknown set name(s) {sorted(unknown)}; use {', '.join(SET_NAMES)}")
        frozen = {
            name: MappingProxyType({p: tuple(fs) for p, fs in self.sets.get(name, {}).items()}) for name in SET_NAMES
        }
        object.__setattr__(self, "sets", MappingProxyType(frozen))
        owner: dict[str, str] = {}
        for name in SET_NAMES:
            for patient in self.sets[name]:
                if patient in owner:
                    raise ValueError(f"patient {patient!r} is in both {owner[patient]!r} and {name!r}")
                owner[patient] = name

    def patients(self, name: str) -> list[str]:
        """Sorted patient IDs of set ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        return sorted(self._set(name))

    def files(self, name: str, root: str | Path | None = None) -> list[Path]:
        """Files of set ``name``, sorted, resolved against ``root`` (default: the split's own root)."""
        base = root if root is not None else self.root
        files = sorted(f for fs in self._set(name).values() for f in fs)
        return [Path(base) / f if base is not None else Path(f) for f in files]

    @property
    def train(self) -> list[Path]:
        """Training files."""
        return self.files("train")

    @property
    def val(self) -> list[Path]:
        """Validation files."""
        return self.files("val")

    @property
    def test(self) -> list[Path]:
        """Test files."""
        return self.files("test")

    def patient_of(self) -> dict[str, str]:
        """``{file: patient}`` over all sets (file strings as stored)."""
        return {f: p for name in SET_NAMES for p, fs in self.sets[name].items() for f in fs}

    def _set(self, name: str) -> Mapping[str, tuple[str, ...]]:
        if name not in SET_NAMES:
            raise ValueError(f"unknown set {name!r}; use one of {', '.join(SET_NAMES)}")
        return self.sets[name]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written by :meth:`save`."""
        doc: dict[str, Any] = {
            "format": SPLIT_FORMAT,
            "fractions": dict(zip(SET_NAMES, self.fractions, strict=True)),
            "seed": self.seed,
            "root": self.root,
            "patient_rule": self.rule,
            "counts": {
                name: {"patients": len(self.sets[name]), "files": sum(len(v) for v in self.sets[name].values())}
                for name in SET_NAMES
            },
        }
        for name in SET_NAMES:
            doc[name] = {p: list(self.sets[name][p]) for p in sorted(self.sets[name])}
        return doc

    def save(self, path: str | Path) -> Path:
        """Write the split as indented JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split written by :meth:`save`.

        Raises:
            InputError: Missing file, invalid JSON, or not an artefix split.
        """
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{path}: cannot read split file ({exc.strerror})") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
        if not isinstance(doc, dict) or doc.get("format") != SPLIT_FORMAT:
            raise InputError(f"{path}: not an artefix split file (expected format {SPLIT_FORMAT!r})")
        fractions = doc.get("fractions", {})
        root = doc.get("root")
        if root is not None and not Path(root).is_absolute():
            root = Path(os.path.normpath(path.absolute().parent / root)).as_posix()
        return cls(
            sets={name: {p: tuple(fs) for p, fs in doc.get(name, {}).items()} for name in SET_NAMES},
            fractions=tuple(float(fractions.get(n, 0.0)) for n in SET_NAMES),  # type: ignore[arg-type]
            seed=int(doc.get("seed", 0)),
            root=root,
            rule=str(doc.get("patient_rule", "")),
        )


def common_root(files: Sequence[Path]) -> Path:
    """The deepest folder that contains all ``files`` (absolute; a scan folder counts by its parent)."""
    parents = [str(f.parent.absolute()) for f in files]
    return Path(os.path.commonpath(parents))


def make_split(
    files: Iterable[str | Path],
    fractions: Sequence[float] = BRAIN_FRACTIONS,
    seed: int = 0,
    patient_of: Callable[[Path], str] | None = None,
    *,
    root: str | Path | None = None,
) -> Split:
    """Split scans into train / validation / test sets by patient.

    Patients (sorted IDs) are permuted by ``np.random.default_rng(seed)`` and dealt out with
    :func:`allocate`: the first ``n_train`` go to training, the next ``n_val`` to validation, the rest to
    test. The split depends only on the set of patient IDs, the fractions and the seed, not on the order
    of ``files``. Adding a patient can move others; keep the saved file to keep a split.

    Args:
        files: Scan paths (e.g. from :func:`discover_scans`).
        fractions: ``(train, val, test)``, adding up to 1; :data:`BRAIN_FRACTIONS` (70/10/20, default) or
            :data:`PELVIS_FRACTIONS` (80/20/0). Each non-zero fraction gets at least one patient when
            there are enough patients (see :func:`allocate`).
        seed: Seed of the patient shuffle.
        patient_of: ``path -> patient ID``; default ``PatientRule(roots=(root,))``.
        root: Data root; file paths are stored relative to it. Default: the deepest folder containing
            all files (use the folder given to :func:`discover_scans`, so that the default patient rule
            sees the subject folders below it).

    Returns:
        The :class:`Split`.

    Raises:
        ValueError: No files, bad fractions, or a file outside ``root``.
    """
    paths = sorted({Path(f).expanduser() for f in files})
    if not paths:
        raise ValueError("make_split got no files; check the folder given to discover_scans")
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {tuple(fractions)}")
    base = Path(root).expanduser() if root is not None else common_root(paths)
    rule = patient_of if patient_of is not None else PatientRule(roots=(base,))
    by_patient: dict[str, list[str]] = {}
    for path in paths:
        try:
            rel = path.absolute().relative_to(base.absolute()).as_posix()
        except ValueError:
            raise ValueError(f"file {path} is not inside root {base}") from None
        by_patient.setdefault(str(rule(path)), []).append(rel)
    patients = sorted(by_patient)
    counts = allocate(len(patients), fractions)
    order = np.random.default_rng(seed).permutation(len(patients))
    sets: dict[str, dict[str, tuple[str, ...]]] = {}
    start = 0
    for name, count in zip(SET_NAMES, counts, strict=True):
        chosen = sorted(patients[i] for i in order[start : start + count])
        sets[name] = {p: tuple(by_patient[p]) for p in chosen}
        start += count
    describe = getattr(rule, "describe", None)
    return Split(
        sets=sets,
        fractions=tuple(float(f) for f in fractions),  # type: ignore[arg-type]
        seed=int(seed),
        root=base.as_posix(),
        rule=describe() if callable(describe) else getattr(rule, "__name__", repr(rule)),
    )
