"""Golden test (issue #21): the shipped models' outputs on fixed real slices are pinned to 1e-6.

``golden/outputs.npz`` holds a few built-in real slices (:mod:`artefix.data.samples`, Fourier-resized to
64x64, one to an odd 63x57 to pin the padding; some corrupted by :func:`artefix.simulate`) and, for every
shipped model, what :func:`artefix.correct` (the users' path: z-normalisation, gates, priors, data
consistency, truncation gate) returns on its slices: the corrected image, every head's residual, the
detector's scores and the estimated SNR, all float32. The stored inputs are what the models see, so the
test pins the models, not the simulators.

Tolerance: each array must match to ``atol = 1e-6 * scale`` (``rtol=0``), where ``scale`` is the largest
absolute value of the expected corrected image for the image and the residuals (the same input units),
and ``max(1, max |expected|)`` for the scores (in ``[0, 1]``) and the SNR (dB). Outputs are stored as
float32, whose rounding (6e-8 relative) is well inside that. The test runs torch on one thread (restored
afterwards), as the file was written, and then reproduces it bit for bit, run after run. Measured spread on
the CPU against the file when the order of the floating-point sums changes (torch with 1, 2, 4 or 8
threads; oneDNN on or off; ATen kernels for AVX-512, AVX2 or no SIMD; oneDNN limited to AVX2 or SSE4.1, as
on other CPUs): at most 3.1e-7 of the scale on the image, 3.0e-7 on the residuals, 4.5e-8 on the scores, 0
on the SNR. 1e-6 is the tightest round tolerance with a margin of 3 over that, and far below any change
of behaviour (``bias_smooth`` 0.1 -> 0.1001 moves ``bias-brain``'s image by 1.6e-5 of its scale).

A deliberate change of a model's weights or of its outputs fails here; regenerate the file on purpose,
and say why in the commit::

    python tests/models/test_golden.py --regenerate

A new shipped model fails :func:`test_every_shipped_model_is_pinned` until it has a line in ``CASES``
and the file is regenerated.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parent / "golden" / "outputs.npz"
REGENERATE = "python tests/models/test_golden.py --regenerate"
RELATIVE_TOLERANCE = 1e-6

INPUTS: dict[str, tuple[str, str | None, float, tuple[int, int]]] = {
    "brain-t1-clean": ("brain-t1", None, 0.0, (64, 64)),
    "brain-t2-motion": ("brain-t2", "motion", 0.125, (64, 64)),
    "brain-flair-noise": ("brain-flair", "noise", 0.0, (64, 64)),
    "brain-t1-subsampling-63x57": ("brain-t1", "subsampling", 3.0, (63, 57)),
    "pelvis-t2-bias": ("pelvis-t2", "bias", 0.1, (64, 64)),
}
"""Input key -> (sample, artefact or None for the clean slice, severity, shape after Fourier resizing)."""

CASES: dict[str, tuple[str, ...]] = {
    "mt-lc-brain": ("brain-t1-subsampling-63x57", "brain-t1-clean"),
    "mt-brain": ("brain-t1-clean",),
    "bias-brain": ("pelvis-t2-bias",),
    "subsampling-brain": ("brain-t1-subsampling-63x57",),
    "motion-brain": ("brain-t2-motion",),
    "noise-brain": ("brain-flair-noise",),
    "mt-lc-pelvis": ("pelvis-t2-bias",),
}
"""Shipped model -> the inputs it is pinned on.

Not every model on every slice: that would be about 1.9 MB (float32 noise hardly compresses), against a
budget of about 450 KB. Each model runs on a slice with its own artefact; the default model on the
odd-sized subsampled slice (data consistency, the open truncation gate and the padding at once) and on the
clean slice (the truncation gate shut); the multi-task brain model on the clean slice (the gates closed);
the pelvic model on its pelvic slice.
"""


def _weights_dir() -> Path:
    """The package's own weights folder (not ``$ARTEFIX_WEIGHTS_DIR``: the golden file pins what ships)."""
    return Path(str(resources.files("artefix") / "weights"))


def shipped_cards() -> dict[str, dict]:
    """Model name -> model card, for every shipped model (a ``.safetensors`` file with its ``.json`` card)."""
    folder = _weights_dir()
    return {
        p.stem: json.loads(p.with_suffix(".json").read_text())
        for p in sorted(folder.glob("*.safetensors"))
        if p.with_suffix(".json").is_file()
    }


def make_inputs() -> dict[str, np.ndarray]:
    """The input slices of :data:`INPUTS`, float32 (used only to regenerate; the test reads them from the file)."""
    from artefix.data.samples import load_sample
    from artefix.fft import fourier_resize
    from artefix.simulation import simulate

    inputs = {}
    for key, (sample, artefact, severity, shape) in INPUTS.items():
        clean = np.abs(fourier_resize(load_sample(sample).astype(np.float64), shape)).astype(np.float32)
        image = clean if artefact is None else simulate(clean, artefact, severity=severity, seed=1)
        inputs[key] = np.ascontiguousarray(image, dtype=np.float32)
    return inputs


def model_outputs(model, image: np.ndarray) -> dict[str, np.ndarray]:
    """What ``artefix.correct(image, model)`` returns, as float32 arrays keyed ``image``, ``residual/HEAD``, ...

    Args:
        model: A shipped model's weights path or what :func:`artefix.load_model` returned.
        image: One input slice.

    Returns:
        ``image``, ``residual/HEAD`` for every head, ``score/HEAD`` (models with a detector) and
        ``snr_db`` (models with a noise gate).
    """
    import artefix

    result = artefix.correct(image, model)
    out = {"image": result.image}
    out.update({f"residual/{head}": r for head, r in result.residuals.items()})
    if result.scores is not None:
        out.update({f"score/{head}": s for head, s in result.scores.items()})
    if result.snr_db is not None:
        out["snr_db"] = result.snr_db
    return {key: np.asarray(value, dtype=np.float32) for key, value in out.items()}


def load_shipped(name: str):
    """A shipped model, loaded from the package's weights folder with its checksum verified."""
    import artefix

    return artefix.load_model(_weights_dir() / f"{name}.safetensors")


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, restoring the previous count afterwards.

    Tiny 64x64 slices gain nothing from more threads, and on a few cores shared with other work torch's
    spinning worker threads make each call ~100 times slower (2.5 s instead of 15 ms per model).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generate() -> dict[str, np.ndarray]:
    """The golden arrays: ``input/KEY``, ``sha256/MODEL`` (its card's) and ``output/MODEL/KEY/...``."""
    cards = shipped_cards()
    missing = sorted(set(cards) - set(CASES))
    if missing:
        raise SystemExit(f"shipped models without a line in CASES: {', '.join(missing)}")
    inputs = make_inputs()
    arrays: dict[str, np.ndarray] = {f"input/{key}": image for key, image in inputs.items()}
    with single_thread():
        for name in sorted(cards):
            arrays[f"sha256/{name}"] = np.array(cards[name]["sha256"])
            model = load_shipped(name)
            for key in CASES[name]:
                for out_key, value in model_outputs(model, inputs[key]).items():
                    arrays[f"output/{name}/{key}/{out_key}"] = value
    return arrays


def regenerate(path: Path = GOLDEN) -> None:
    """Write the golden file (compressed) from the shipped models as they are now."""
    arrays = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {len(arrays)} arrays)")


# --- the test --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    """The golden file's arrays, read once."""
    assert GOLDEN.is_file(), f"{GOLDEN} is missing; create it with {REGENERATE}"
    with np.load(GOLDEN, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for this module's tests only (:func:`single_thread`); the count is restored after."""
    with single_thread():
        yield


def _pinned(golden: dict[str, np.ndarray]) -> set[str]:
    return {key.split("/")[1] for key in golden if key.startswith("sha256/")}


def test_every_shipped_model_is_pinned(golden):
    shipped = set(shipped_cards())
    pinned = _pinned(golden)
    assert pinned == shipped, (
        f"golden file pins {sorted(pinned)}, shipped are {sorted(shipped)}: "
        f"add a new model to CASES in {Path(__file__).name}, then {REGENERATE}"
    )
    assert {key.split("/")[1] for key in golden if key.startswith("output/")} == shipped


@pytest.mark.parametrize("name", sorted(shipped_cards()))
def test_shipped_model_outputs_are_unchanged(golden, one_thread, name):
    """Every stored output of ``name`` matches a fresh ``artefix.correct`` to 1e-6 of its scale (module docstring)."""
    if name not in _pinned(golden):
        pytest.fail(f"{name} is shipped but not in the golden file: add it to CASES, then {REGENERATE}")
    stored_sha = str(golden[f"sha256/{name}"])
    card_sha = shipped_cards()[name]["sha256"]
    assert stored_sha == card_sha, (
        f"{name}: the shipped weights changed (card sha256 {card_sha[:12]}..., golden file {stored_sha[:12]}...); "
        f"if that is on purpose, regenerate the golden outputs: {REGENERATE}"
    )
    prefix = f"output/{name}/"
    keys = sorted({key[len(prefix) :].split("/")[0] for key in golden if key.startswith(prefix)})
    assert keys, f"{name}: no outputs in the golden file"
    model = load_shipped(name)
    for key in keys:
        expected = {k[len(f"{prefix}{key}/") :]: v for k, v in golden.items() if k.startswith(f"{prefix}{key}/")}
        actual = model_outputs(model, golden[f"input/{key}"])
        assert sorted(actual) == sorted(expected), f"{name} on {key}: outputs {sorted(actual)} != {sorted(expected)}"
        image_scale = float(np.abs(expected["image"]).max())
        for out_key, want in expected.items():
            in_image_units = out_key == "image" or out_key.startswith("residual/")
            scale = image_scale if in_image_units else max(1.0, float(np.nanmax(np.abs(want))))
            np.testing.assert_allclose(
                actual[out_key],
                want,
                rtol=0,
                atol=RELATIVE_TOLERANCE * scale,
                err_msg=(
                    f"{name} on {key}: {out_key} changed beyond {RELATIVE_TOLERANCE:g} x {scale:.4g}; "
                    f"if the change of behaviour is deliberate, {REGENERATE} (and say why in the commit)"
                ),
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Golden outputs of the shipped models (issue #21).")
    parser.add_argument("--regenerate", action="store_true", help="rewrite tests/models/golden/outputs.npz")
    args = parser.parse_args()
    if not args.regenerate:
        parser.error("nothing to do: pass --regenerate to rewrite the golden file on purpose")
    regenerate()
