"""Per-volume cost of artefix's TorchIO and MONAI transforms against those libraries' own artefact transforms.

One 320x320x32 float32 volume (the built-in brain T1 slice at 320x320, 32 times), one thread, in one run:
TorchIO's RandomMotion, RandomBiasField and RandomNoise and artefix's ``RandomArtefact`` for each artefact (on a
``tio.Subject``, so TorchIO's copy of the subject is in every row), then MONAI's RandBiasField and
RandRicianNoise and artefix's ``RandArtefact`` (on a ``MetaTensor``). Every call draws new parameters. artefix
corrupts the 32 slices one by one, each with its own draw, as its training data does; TorchIO's and MONAI's
transforms act on the whole volume at once (a 3D field, 3D motion, voxel-wise noise). Prints a Markdown table.

Usage: ``python benchmarks/transforms.py [--threads 1] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import numpy as np
import torch
from simulation import best_time  # benchmarks/simulation.py: median wall time after two warm-ups

import artefix
from artefix.artefacts.sampler import ARTEFACT_NAMES

SHAPE = (320, 320, 32)
#: artefix's artefact and the library's transform for the same artefact, compared after the table.
PAIRS = {
    "TorchIO": (("motion", "RandomMotion()"), ("bias", "RandomBiasField()"), ("noise", "RandomNoise()")),
    "MONAI": (("bias", "RandBiasField(prob=1)"), ("noise", "RandRicianNoise(prob=1)")),
}


def set_threads(threads: int) -> None:
    """Limit torch (and SimpleITK, which TorchIO's RandomMotion resamples with) to ``threads`` threads."""
    torch.set_num_threads(threads)
    try:
        import SimpleITK as sitk  # noqa: N813 - the conventional alias
    except ImportError:
        return
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def volume() -> np.ndarray:
    """The (1, 320, 320, 32) float32 test volume, channel-first as TorchIO and MONAI expect."""
    image = artefix.fft.fourier_resize(artefix.load_sample("brain-t1"), SHAPE[:2]).astype(np.float32)
    return np.ascontiguousarray(np.repeat(image[None, :, :, None], SHAPE[2], axis=3))


def torchio_rows(data: np.ndarray) -> list[tuple[str, Callable[[], object]]]:
    """TorchIO's own transforms and artefix's ``RandomArtefact``, each called on one subject."""
    import torchio as tio

    from artefix.integrations.torchio import RandomArtefact

    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.from_numpy(data), affine=np.diag([0.7, 0.7, 3.0, 1.0])))
    own = [tio.RandomMotion(), tio.RandomBiasField(), tio.RandomNoise()]
    rows = [(f"{t.name}()", t) for t in own]
    rows += [(f'artefix RandomArtefact("{name}")', RandomArtefact(name)) for name in ARTEFACT_NAMES]
    return [(label, lambda t=t: t(subject)) for label, t in rows]


def monai_rows(data: np.ndarray) -> list[tuple[str, Callable[[], object]]]:
    """MONAI's own transforms and artefix's ``RandArtefact``, each called on one ``MetaTensor``."""
    from monai.data import MetaTensor
    from monai.transforms import RandBiasField, RandRicianNoise

    from artefix.integrations.monai import RandArtefact

    image = MetaTensor(torch.from_numpy(data), affine=torch.diag(torch.tensor([0.7, 0.7, 3.0, 1.0])))
    own = [("RandBiasField(prob=1)", RandBiasField(prob=1.0)), ("RandRicianNoise(prob=1)", RandRicianNoise(prob=1.0))]
    rows = own + [(f'artefix RandArtefact("{name}")', RandArtefact(name)) for name in ARTEFACT_NAMES]
    for _, transform in rows:
        transform.set_random_state(0)
    return [(label, lambda t=t: t(image)) for label, t in rows]


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)

    import monai
    import torchio

    data = volume()
    print(
        f"# artefix transforms benchmark ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"TorchIO {torchio.__version__}, MONAI {monai.__version__},"
    )
    print(f"# {args.threads} thread(s), one {'x'.join(map(str, SHAPE))} float32 volume, median of {args.repeats})\n")
    print("| library | transform | ms / volume | ms / slice |")
    print("|---|---|---:|---:|")
    times: dict[tuple[str, str], float] = {}
    for library, rows in (("TorchIO", torchio_rows(data)), ("MONAI", monai_rows(data))):
        for label, fn in rows:
            seconds = times[library, label] = best_time(fn, args.repeats)
            print(f"| {library} | {label} | {seconds * 1e3:.1f} | {seconds * 1e3 / SHAPE[2]:.2f} |")
    print()
    for library, pairs in PAIRS.items():
        arte = "RandomArtefact" if library == "TorchIO" else "RandArtefact"
        ratios = []
        for name, own in pairs:
            ours = f'{arte}("{name}")'
            ratios.append(f"{ours} / {own}: {times[library, 'artefix ' + ours] / times[library, own]:.2f}")
        print(f"- {library}, time of artefix's transform / the library's own: {'; '.join(ratios)}")


if __name__ == "__main__":
    main()
