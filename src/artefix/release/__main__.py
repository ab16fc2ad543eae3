"""``python -m artefix.release model|set-inference|refresh-validation|docs``: the release tooling's command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import inference, publish, validation
from .docs import write_docs
from .repository import Repository, locate

PROG = "python -m artefix.release"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _summary(module: object) -> str:
    """The first line of a module's docstring."""
    return (module.__doc__ or "").strip().splitlines()[0]


def _model(args: argparse.Namespace, repo: Repository) -> None:
    publish.publish(
        repo,
        args.run,
        args.name,
        config=args.config,
        evaluation=args.evaluation,
        evaluation_command=args.evaluation_command,
        notes=args.notes,
        description=args.description,
        split_file=args.split_file,
        starts_from=args.starts_from,
        consistency=args.consistency,
        ensemble=args.ensemble,
        bias_smooth=args.bias_smooth,
        noise_snr=args.noise_snr,
    )
    write_docs(repo)


def _set_inference(args: argparse.Namespace, repo: Repository) -> None:
    weights = repo.weights / f"{args.name}.safetensors"
    if not weights.is_file():
        raise SystemExit(f"error: no shipped model {args.name!r} ({weights})")
    changes = dict(inference.parse_setting(s) for s in args.settings)
    card = inference.set_inference(weights, changes, args.note, root=repo.root)
    write_docs(repo)
    print(json.dumps(card["inference"]))


def _refresh_validation(args: argparse.Namespace, repo: Repository) -> None:
    for name in args.names:
        try:
            validation.refresh(repo.weights, name, args.evaluation)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    write_docs(repo)


def _docs(args: argparse.Namespace, repo: Repository) -> None:
    written = write_docs(repo)
    print(f"{len(written)} pages in {repo.docs}: models.md and models/NAME.md for every shipped card")


def _add_model(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("model", help=_summary(publish), description=_summary(publish))
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--evaluation", type=Path)
    parser.add_argument("--config", required=True, help="the config that trained RUN, relative to the repository")
    parser.add_argument("--notes", default="")
    parser.add_argument(
        "--consistency",
        action="store_true",
        help="ship with k-space data consistency of the subsampling head on (artefix.models.consistency); "
        "the trained weights are unchanged",
    )
    parser.add_argument(
        "--ensemble",
        type=int,
        help="ship with this inference self-ensemble (ModelConfig.ensemble: 1, 2, 4 or 8 dihedral transforms "
        "averaged per slice); the trained weights are unchanged",
    )
    parser.add_argument(
        "--bias-smooth",
        type=float,
        help="ship with the smooth-field prior on the bias head (ModelConfig.bias_smooth: Gaussian sigma as a "
        "fraction of the larger image side); the trained weights are unchanged",
    )
    parser.add_argument(
        "--noise-snr",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="ship with the SNR gate on the noise head (ModelConfig.noise_snr: full below LO dB of estimated "
        "SNR, off above HI); the trained weights are unchanged",
    )
    parser.add_argument("--description", help="one line for `artefix models` (default: DESCRIPTIONS[NAME])")
    parser.add_argument("--evaluation-command", default="", help="the artefix evaluate command line")
    parser.add_argument("--split-file", help="committed copy of RUN/split.json")
    parser.add_argument(
        "--starts-from",
        nargs=2,
        action="append",
        default=[],
        metavar=("RUN", "CONFIG"),
        help="an earlier stage: the run whose weights the next stage started from (model.init) and the config "
        "that trained it, relative to the repository; repeat for each stage, earliest first",
    )
    parser.set_defaults(handler=_model)


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand a release task."""
    main_parser = _Parser(prog=PROG, description=_summary(sys.modules[__package__]))
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_model(commands)
    text = _summary(inference)
    sub = commands.add_parser("set-inference", help=text, description=text)
    sub.add_argument("name", help="a shipped model (src/artefix/weights/NAME.safetensors)")
    sub.add_argument("settings", nargs="+", help="NAME=VALUE, NAME one of the inference fields")
    sub.add_argument("--note", default="", help="why; appended to the card's notes with the date")
    sub.set_defaults(handler=_set_inference)
    text = "Refresh the validation tables of shipped model cards from a re-run of their evaluation."
    sub = commands.add_parser("refresh-validation", help=text, description=text)
    sub.add_argument("names", nargs="+", help="shipped models evaluated together")
    sub.add_argument("--evaluation", type=Path, required=True, help="the folder their validation.command wrote")
    sub.set_defaults(handler=_refresh_validation)
    text = "Re-render docs/models.md and docs/models/NAME.md from the shipped cards."
    sub = commands.add_parser("docs", help=text, description=text)
    sub.set_defaults(handler=_docs)
    return main_parser


def main(argv: Sequence[str] | None = None, repo: Repository | None = None) -> None:
    """Run one subcommand on ``repo`` (default: the checkout found by :func:`~.repository.locate`)."""
    args = parser().parse_args(argv)
    args.handler(args, repo or locate())


if __name__ == "__main__":
    main()
