"""Read and write MR scans as :class:`Volume` objects (NIfTI, DICOM, fastMRI HDF5, NumPy, PNG).

Layout: :mod:`~artefix.data.io.volume` holds :class:`Volume` and the checks every format shares;
:mod:`~artefix.data.io.files` has :func:`read_volume` / :func:`write_volume`, which pick a format module by
extension and import it on first use: :mod:`~artefix.data.io.nifti`, :mod:`~artefix.data.io.dicom`,
:mod:`~artefix.data.io.fastmri` and :mod:`~artefix.data.io.arrays` (``.npy``, ``.npz``, PNG).
"""

from __future__ import annotations

# Everything the single module ``artefix.data.io`` offered stays importable from here.
import os as os
from collections.abc import Mapping as Mapping
from dataclasses import dataclass as dataclass
from dataclasses import field as field
from pathlib import Path as Path
from types import MappingProxyType as MappingProxyType
from typing import Any as Any

import numpy as np  # noqa: F401

from artefix.atomic import atomic_file as atomic_file
from artefix.atomic import atomic_folder as atomic_folder
from artefix.atomic import same_path as same_path
from artefix.data.io.files import _INPUT_SUFFIXES as _INPUT_SUFFIXES
from artefix.data.io.files import _OUTPUT_SUFFIXES as _OUTPUT_SUFFIXES
from artefix.data.io.files import _SUFFIX_FORMAT as _SUFFIX_FORMAT
from artefix.data.io.files import (
    SAMPLE_PREFIX,
    SUPPORTED_INPUTS,
    SUPPORTED_OUTPUTS,
    is_sample,
    read_input,
    read_volume,
    write_volume,
)
from artefix.data.io.files import _check_output as _check_output
from artefix.data.io.files import _input_format as _input_format
from artefix.data.io.files import _output_format as _output_format
from artefix.data.io.files import _suffix as _suffix
from artefix.data.io.volume import FORMATS, Volume, check_finite, has_dicom_preamble
from artefix.errors import InputError as InputError
from artefix.errors import OutputError as OutputError

__all__ = [
    "FORMATS",
    "SAMPLE_PREFIX",
    "SUPPORTED_INPUTS",
    "SUPPORTED_OUTPUTS",
    "Volume",
    "check_finite",
    "has_dicom_preamble",
    "is_sample",
    "read_input",
    "read_volume",
    "write_volume",
]
