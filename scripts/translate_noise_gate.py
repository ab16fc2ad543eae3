r"""Translate a noise-gate ramp from the old whole-image SNR estimate to the foreground SNR, on training slices.

Until release 0.1 (stage 4 of ``mt-lc-brain``) the noise gate read ``20 log10(S / N)`` with ``S`` the mean
k-space magnitude and ``N`` the Haar-MAD of the *whole* image (:func:`old_snr_db` below, kept here only for
this translation), which a zeroed or padded background moved by up to 200 dB. The gate now reads
:func:`artefix.models.priors.estimated_snr_db`. A model whose ramp was chosen in the old units gets the
ramp that gates the same training slices alike: each old threshold maps to the median foreground SNR of the
corrupted training slices (clean and noise at 15, 10, 5, 0, -5 dB) whose old estimate lies within 1 dB
of it. The shipped ``mt-brain``, ``noise-brain`` and ``mt-lc-pelvis`` ramps came from::

    python scripts/translate_noise_gate.py --split configs/release/brain_split.json --thresholds 9,11,12
    python scripts/translate_noise_gate.py --split configs/release/pelvis_split.json --thresholds 9,12

(the default ``mt-lc-brain`` had its ramp chosen afresh: ``scripts/noise_gate_ramp.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from artefix.evaluation.experiments import corruption_rng, load_slices, make_case
from artefix.models.priors import estimated_snr_db

LEVELS = (None, 15.0, 10.0, 5.0, 0.0, -5.0)


def old_snr_db(image: torch.Tensor) -> torch.Tensor:
    """The previous estimate: mean k-space magnitude over the whole image's Haar-MAD noise, ``(B,)`` dB."""
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    u = image[:, :h, :w].float()
    d = (u[:, 0::2, 0::2] - u[:, 0::2, 1::2] - u[:, 1::2, 0::2] + u[:, 1::2, 1::2]) / 2
    noise = d.abs().flatten(1).median(dim=-1).values / 0.6745
    signal = torch.fft.fft2(image.float(), norm="ortho").abs().mean(dim=(-2, -1))
    return 20 * torch.log10(signal.clamp_min(1e-30) / noise.clamp_min(1e-12 * signal.clamp_min(1e-30)))


def main() -> None:
    """Print the old and new estimates' medians per level and the translated thresholds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, required=True, help="split file; its 'train' scans are used")
    parser.add_argument("--slices", type=int, default=48, help="slices (centres of equal bins)")
    parser.add_argument("--thresholds", default="9,11,12", help="old thresholds in dB, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(2)
    split = json.loads(args.split.read_text())
    root = Path(split["root"])
    if not root.is_absolute():
        root = args.split.parent / root
    files = [root / f for scans in split["train"].values() for f in scans]
    slices, _, _ = load_slices(files, max_slices=args.slices, tune_slices=0)
    pairs = []
    for s in slices:
        for level in LEVELS:
            if level is None:
                image = np.asarray(s.image, np.float32)
            else:
                rng = corruption_rng(0, "eval", "noise", level, s.key, s.index)
                image = np.asarray(make_case(s.image, "noise", level, rng).corrupted, np.float32)
            x = torch.from_numpy(image)[None]
            u = (x - x.mean()) / x.std(correction=0)
            pairs.append((level, float(old_snr_db(u)[0]), float(estimated_snr_db(u)[0])))
    print(f"{len(slices)} training slices x {len(LEVELS)} levels")
    for level in LEVELS:
        old = [o for lv, o, _ in pairs if lv == level]
        new = [n for lv, _, n in pairs if lv == level]
        name = "clean" if level is None else f"{level:g} dB"
        print(f"{name:>8}: old median {np.median(old):6.1f} dB, foreground median {np.median(new):6.1f} dB")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        near = [n for _, o, n in pairs if abs(o - threshold) <= 1.0]
        value = f"{np.median(near):.1f} dB ({len(near)} slices)" if near else "no slice within 1 dB"
        print(f"old {threshold:g} dB -> foreground {value}")


if __name__ == "__main__":
    main()
