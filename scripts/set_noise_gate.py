"""Set a shipped model's noise-gate ramp (``model.noise_snr``), keeping its weights and the rest of its card.

Usage: ``python scripts/set_noise_gate.py NAME LO HI --why TEXT``. Rewrites ``src/artefix/weights/NAME``
(``.safetensors`` metadata and ``.json`` card, with a new ``sha256``); the card keeps the ramp it was trained
or validated with under ``training_config`` and records the change in ``noise_gate_history``. Used when the
SNR estimate changed its definition (``scripts/translate_noise_gate.py`` gives the translated ramps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from artefix.models.checkpoint import load_model, read_card, save_model

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "artefix" / "weights"


def main() -> None:
    """Parse the arguments and rewrite the model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="shipped model name (src/artefix/weights/NAME.safetensors)")
    parser.add_argument("lo", type=float, help="SNR (dB) at and below which the noise correction is full")
    parser.add_argument("hi", type=float, help="SNR (dB) from which the noise correction is off")
    parser.add_argument("--why", required=True, help="one sentence for the card's noise_gate_history")
    args = parser.parse_args()
    path = WEIGHTS / f"{args.name}.safetensors"
    model, _ = load_model(path)
    card = read_card(path) or {}
    old = model.config.noise_snr
    model.config = model.config.replace(noise_snr=(args.lo, args.hi))
    history = list(card.get("noise_gate_history", []))
    history.append({"from": list(old) if old else None, "to": [args.lo, args.hi], "why": args.why})
    card["noise_gate_history"] = history
    save_model(model, path, card)
    print(f"{args.name}: noise gate {old} -> {(args.lo, args.hi)}")


if __name__ == "__main__":
    main()
