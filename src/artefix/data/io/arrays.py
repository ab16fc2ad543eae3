"""NumPy (``.npy``/``.npz``) and PNG for :mod:`artefix.data.io`.

Arrays carry no geometry: the volume gets an identity affine and 1 mm spacing. PNG output is a display
format: one 2D slice min-max scaled, ``q = round((x - min) / (max - min) * (2^b - 1))`` with ``b = 16``
(``b = 8`` when the reference was an 8-bit PNG), so absolute intensities are not kept.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from artefix.atomic import one_line
from artefix.data.io.volume import Volume
from artefix.errors import InputError, OutputError

log = logging.getLogger(__name__)


def as_image_array(array: np.ndarray, path: Path) -> np.ndarray:
    """Validate a loaded array (2D/3D, numeric) and return it as float32; complex gives magnitude."""
    if array.dtype.kind not in "biufc":
        raise InputError(f"{path}: array of dtype {array.dtype} is not numeric image data")
    shape = array.shape
    if array.ndim > 3:
        array = np.squeeze(array)
    if array.ndim not in (2, 3) or array.size == 0:
        raise InputError(f"{path}: array of shape {shape} is not a 2D slice or a 3D volume")
    if array.dtype.kind == "c":
        log.warning("%s: complex data, using its magnitude", path)
        array = np.abs(array)
    return array.astype(np.float32, copy=False)


def read_numpy(path: Path, fmt: str, key: str | None) -> Volume:
    """Read ``.npy`` (``fmt="npy"``) or one array of an ``.npz`` (``fmt="npz"``), pickles refused.

    Args:
        path: The file.
        fmt: ``"npy"`` or ``"npz"``.
        key: npz array name; default its single array, else ``arr_0``.

    Raises:
        InputError: Object/pickled data, truncated file, unknown or ambiguous key (the keys are listed),
            non-numeric, 1D or >3D data.
    """
    meta: dict[str, Any] = {"slice_axis": None}
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path}: cannot load ({one_line(exc)}); object/pickled arrays are refused") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: not a readable {fmt} file ({one_line(exc)})") from exc
    if fmt == "npz":
        with loaded:
            keys = list(loaded.files)
            if key is None:
                if len(keys) == 1:
                    key = keys[0]
                elif "arr_0" in keys:
                    key = "arr_0"
                else:
                    raise InputError(f"{path}: holds several arrays; choose one with `key` from {keys}")
            if key not in keys:
                raise InputError(f"{path}: no array {key!r}; keys are {keys}")
            try:
                array = loaded[key]
            except ValueError as exc:
                raise InputError(f"{path}: cannot load {key!r} ({one_line(exc)})") from exc
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"{path}: truncated or corrupt npz ({one_line(exc)})") from exc
        meta["key"] = key
    else:
        array = loaded
    return Volume(as_image_array(np.asarray(array), path), format=fmt, source=path, meta=meta)


def _png_bit_depth(path: Path) -> int:
    """Bits per channel from a PNG's IHDR chunk (byte 24 of the file)."""
    with open(path, "rb") as fh:
        head = fh.read(25)
    return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else 8


def read_png(path: Path) -> Volume:
    """Read a grayscale PNG (8/16-bit values as stored); colour becomes luminance, with a warning.

    Luminance is ITU-R BT.601: ``Y = 0.299 R + 0.587 G + 0.114 B``. ``meta['bit_depth']`` is 8 or 16.

    Raises:
        InputError: Not a readable PNG.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if img.format == "PNG" and mode not in ("I", "I;16", "I;16B", "L", "1", "P") and _png_bit_depth(path) == 16:
                # Pillow decodes 16-bit colour and grey+alpha PNGs to 8 bits per channel: refuse, not truncate
                raise InputError(f"{path}: 16-bit {mode} PNG is not supported; save it as 16-bit grayscale")
            if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
                log.warning("%s: %s image converted to luminance 0.299 R + 0.587 G + 0.114 B", path, mode)
                array = rgb @ np.array([0.299, 0.587, 0.114])
                bit_depth = 8
            else:
                gray = img.convert("L") if mode in ("1", "LA") else img
                array = np.asarray(gray)
                bit_depth = 8 if array.dtype == np.uint8 else 16
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable PNG ({one_line(exc)})") from exc
    meta = {"slice_axis": None, "bit_depth": bit_depth}
    return Volume(as_image_array(array, path), format="png", source=path, meta=meta)


def write_png(array: np.ndarray, ref: Volume, tmp: Path, path: Path) -> None:
    """Write a 2D ``array`` to ``tmp`` as a min-max scaled 16-bit (or 8-bit, see module doc) PNG.

    Raises:
        OutputError: ``array`` is not 2D.
    """
    from PIL import Image

    if array.ndim != 2:
        raise OutputError(f"{path}: PNG holds one 2D slice, got shape {array.shape}")
    bits = 8 if ref.format == "png" and ref.meta.get("bit_depth") == 8 else 16
    lo, hi = float(array.min()), float(array.max())
    scaled = (array.astype(np.float64) - lo) / (hi - lo) if hi > lo else np.zeros(array.shape)
    quantised = np.round(scaled * (2**bits - 1)).astype(np.uint8 if bits == 8 else np.uint16)
    Image.fromarray(quantised).save(tmp, format="PNG")
