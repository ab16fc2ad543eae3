"""What ``artefix correct --only HEAD --no-gates`` gives against the model as shipped, on an evaluation's slices.

Corrupts the slices of an earlier ``artefix evaluate`` run (its ``evaluation.json`` names them) exactly as that
run did (seed 0), for one experiment at each of its severities and for the clean slice, and prints the mean
SSIM / VIF of the input, the shipped model (all heads, gated), the shipped model with only ``--head``, and
that head alone in full (``InferencePolicy.gated`` false). The README's numbers for
``--only motion --no-gates`` came from::

    python scripts/compare_gates.py eval/brain-val --head motion
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from artefix.correction.core import correct_batch
from artefix.evaluation.experiments import corruption_rng, load_slices, make_case, severities_of
from artefix.evaluation.metrics import compute_metrics, znorm
from artefix.models.registry import load_named_model


def main() -> None:
    """Parse the arguments, print one line per severity (and one for the clean slices)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="folder of an artefix evaluate run")
    parser.add_argument("--model", default="mt-lc-brain")
    parser.add_argument("--head", default="motion", help="the head (and experiment) to compare")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run = json.loads((args.evaluation / "evaluation.json").read_text())
    slices, _, _ = load_slices([Path(f) for f in run["files"]], max_slices=run["max_slices"])
    shipped, _ = load_named_model(args.model)
    ungated = shipped.policy.replace(gated=False)
    one = torch.tensor([float(h == args.head) for h in shipped.head_names])
    variants = {
        "shipped": (shipped.policy, torch.ones(len(shipped.head_names))),
        f"--only {args.head}": (shipped.policy, one),
        f"--only {args.head} --no-gates": (ungated, one),
    }
    for experiment, level in [*((args.head, s) for s in severities_of(args.head)), ("clean", None)]:
        scores: dict[str, list[tuple[float, float]]] = {"input": []} | {k: [] for k in variants}
        for s in slices:
            if experiment == "clean":
                corrupted = np.asarray(s.image, np.float32)
            else:
                rng = corruption_rng(0, "eval", experiment, level, s.key, s.index)
                corrupted = np.asarray(make_case(s.image, experiment, level, rng).corrupted, np.float32)
            x = torch.from_numpy(corrupted)[None]
            mean, std = x.mean(dim=(1, 2)), x.std(dim=(1, 2), correction=0)
            outputs = {"input": corrupted}
            with torch.no_grad():
                for name, (policy, weights) in variants.items():
                    outputs[name] = correct_batch(shipped, x, mean, std, weights, policy=policy).image[0].numpy()
            ref = znorm(np.asarray(s.image, np.float64))
            for name, out in outputs.items():
                m = compute_metrics(ref, znorm(np.asarray(out, np.float64)))
                scores[name].append((m["ssim"], m["vif"]))
        cells = "  ".join(
            f"{name} {np.mean([a for a, _ in v]):.4f}/{np.mean([b for _, b in v]):.4f}" for name, v in scores.items()
        )
        print(f"{experiment} {'' if level is None else level}: {cells}", flush=True)


if __name__ == "__main__":
    main()
