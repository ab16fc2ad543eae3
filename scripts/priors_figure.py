"""Draw docs/figures/priors.png: what the physics priors change on a nearly clean scan.

One slice of a training scan (IXI056) with a 5 % bias field, corrected by the
default model with and without its physics priors (``artefix.models.priors``), each scored against the
clean slice with SSIM and VIF as in ``artefix evaluate``. Without the priors the noise head opens and
changes the slice's contrast; with them it stays shut (estimated SNR above the gate's ramp) and the bias head
applies a smooth field.

Usage: ``python scripts/priors_figure.py [--out docs/figures/priors.png]`` (needs ``../shared/data``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from artefix.artefacts.base import znorm  # noqa: E402
from artefix.evaluation.experiments import corruption_rng, load_slices, make_case  # noqa: E402
from artefix.evaluation.metrics import ssim, vif  # noqa: E402
from artefix.models.priors import estimated_snr_db  # noqa: E402
from artefix.models.registry import load_named_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT.parent / "shared" / "data" / "ixi_t1_2mm_via_nichart" / "IXI056-HH-1327_T1.nii.gz"
SLICE = 50


def main() -> None:
    """Corrupt, correct with and without the priors, draw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "priors.png")
    args = parser.parse_args()
    slices, _, _ = load_slices([SCAN], max_slices=None, tune_slices=0)
    clean = next(s for s in slices if s.index == SLICE)
    case = make_case(clean.image, "bias", 0.05, corruption_rng(0, "eval", "bias", 0.05, clean.key, clean.index))
    u = torch.from_numpy(znorm(case.corrupted.astype(np.float64)).astype(np.float32))[None, None]
    ref = znorm(case.clean.astype(np.float64))
    shipped, _ = load_named_model("mt-lc-brain")
    with torch.inference_mode():
        with_priors = shipped.eval()(u)
        without = shipped(u, policy=shipped.policy.without_priors())
    noise = shipped.head_names.index("noise")
    snr = float(estimated_snr_db(u[:, 0])[0])
    shut = shipped.policy.noise_snr[1]
    panels = [
        ("clean slice (reference)", ref, None),
        ("input: 5 % bias field", u[0, 0].numpy(), ref),
        ("heads as trained (--no-priors)", without.output[0, 0].numpy(), ref),
        ("as shipped (with the priors)", with_priors.output[0, 0].numpy(), ref),
        ("noise residual as trained", without.residuals[0, noise].numpy(), None),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, image, against) in zip(axes, panels, strict=True):
        signed = title.startswith("noise residual")
        ax.imshow(image, cmap="RdBu_r" if signed else "gray", vmin=-0.5 if signed else -1.2, vmax=0.5 if signed else 3)
        if against is not None:
            img = znorm(np.asarray(image, dtype=np.float64))
            title += f"\nSSIM {ssim(against, img):.3f}  VIF {vif(against, img):.3f}"
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"IXI056 slice {SLICE} (training split), estimated SNR {snr:.1f} dB: the noise gate is shut above {shut:g} dB",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
