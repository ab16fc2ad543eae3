"""``artefix correct``: correct a real scan with a trained model and show what was corrected."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from artefix.artefacts.names import HEADS
from artefix.errors import InputError


class Runtime(str, Enum):
    """``--runtime``: what runs the model (``artefix.correction.options.RUNTIMES``)."""

    torch = "torch"
    onnx = "onnx"


class SnrScope(str, Enum):
    """``--snr-scope``: the SNR the noise gate sees (``artefix.correction.record.SNR_SCOPES``)."""

    scan = "scan"
    slice = "slice"


def parse_only(text: str | None) -> list[str] | None:
    """Parse ``--only``: comma-separated head names; ``none`` selects no head; None all heads.

    Raises:
        InputError: For an empty value (``--only ""``, most likely an unset shell variable), an unknown or
            repeated head name.
    """
    if text is None:
        return None
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise InputError(f"--only: no artefact given in {text!r}; choose from {', '.join(HEADS)}, or 'none'")
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in HEADS]
    if unknown:
        raise InputError(f"--only: unknown artefact(s) {', '.join(unknown)}; choose from {', '.join(HEADS)}")
    if len(set(names)) != len(names):
        raise InputError(f"--only: an artefact is listed twice in {text!r}")
    return names


def parse_strength(text: str | None) -> dict[str, float] | None:
    """Parse ``--strength``: comma-separated ``HEAD=FACTOR`` with ``FACTOR`` from 0 to 1; None keeps every 1.

    Raises:
        InputError: For a malformed item, an unknown or repeated head, or a factor outside ``[0, 1]``.
    """
    if text is None:
        return None
    out: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise InputError(f"--strength: {item!r} is not HEAD=FACTOR, e.g. noise=0.5")
        if name not in HEADS:
            raise InputError(f"--strength: unknown artefact {name!r}; choose from {', '.join(HEADS)}")
        if name in out:
            raise InputError(f"--strength: {name} is listed twice in {text!r}")
        try:
            factor = float(value)
        except ValueError:
            factor = float("nan")
        if not 0.0 <= factor <= 1.0:
            raise InputError(f"--strength: {item!r} needs a factor from 0 to 1")
        out[name] = factor
    if not out:
        raise InputError("--strength: give HEAD=FACTOR items, e.g. noise=0.5")
    return out


def correct_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATHS",
            help="INPUT OUTPUT for one scan: INPUT (NIfTI, DICOM series folder, fastMRI .h5, .npy/.npz or PNG, "
            "or sample:NAME, a built-in sample slice) and OUTPUT, the corrected scan in the same family: "
            ".nii/.nii.gz (input's affine and header kept), a folder (new DICOM series), .npy, .npz, .h5 or .png. "
            "INPUT... --out-dir DIR for many scans: files, folders, DICOM trees, BIDS datasets.",
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Shipped model name (see 'artefix models') or a .safetensors path."),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            help="Apply only these corrections, comma-separated: bias,subsampling,motion,noise; 'none': none."
        ),
    ] = None,
    strength: Annotated[
        str | None,
        typer.Option(
            help="Partial corrections, comma-separated HEAD=FACTOR (0 to 1), e.g. noise=0.5 removes half of "
            "what the noise head would (keeps part of the scan's own noise); others stay at 1."
        ),
    ] = None,
    ensemble: Annotated[
        int | None,
        typer.Option(
            help="Self-ensemble: average each slice's correction over 1, 2, 4 or 8 flips/transposes "
            "(default: the model's, 1 for the shipped models); 8 is the most accurate and 8x slower."
        ),
    ] = None,
    priors: Annotated[
        bool,
        typer.Option(
            help="Keep the model's physics priors: its bias correction is a smooth field, and its noise "
            "correction fades out on scans whose estimated SNR is above the card's range (a scan's own "
            "noise is kept). --no-priors runs the heads as trained."
        ),
    ] = True,
    gates: Annotated[
        bool,
        typer.Option(
            help="Let the model's artefact detector weight each correction by how present it finds the "
            "artefact (the QC report shows the scores). --no-gates applies each correction in full: for a "
            "scan you know has an artefact the detector scores low; combine with --only."
        ),
    ] = True,
    snr_scope: Annotated[
        SnrScope,
        typer.Option(
            help="What the noise correction's SNR gate looks at: 'scan' (the median SNR of the slices, so "
            "every slice of a scan is denoised alike) or 'slice' (each slice's own estimate)."
        ),
    ] = SnrScope.scan,
    residuals: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the residual volumes in input units, one per model head (applied or not), "
            "in OUTPUT's family (.npy for PNG)."
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Self-contained HTML QC report; a JSON summary is written next to it.")
    ] = None,
    axis: Annotated[
        int | None,
        typer.Option(
            help="Slice axis (default: the header's acquisition axis, else the axis of clearly the thickest "
            "voxels, else the last)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Slices per model call (bounds the memory; default: 8 on a GPU, by slice size on a CPU)."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    runtime: Annotated[
        Runtime,
        typer.Option(
            help="What runs the model: 'torch', or 'onnx' (ONNX Runtime, the model exported once per slice "
            "size; pip install 'artefix\\[export]'). One scan (INPUT OUTPUT) only."
        ),
    ] = Runtime.torch,
    key: Annotated[
        str | None, typer.Option(help="Array/series to read: npz key, .h5 dataset or DICOM SeriesInstanceUID.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary table.")] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="Correct every scan of the INPUTs into this folder, mirroring their tree (a BIDS dataset gives a "
            "BIDS-derivatives dataset); a rerun skips the scans already corrected.",
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="With --out-dir: worker processes (scans corrected at once).")
    ] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="With --out-dir: Dask scheduler address (tcp://HOST:8786) to correct the scans on its workers "
            "(pip install 'artefix\\[dask]'; the workers need artefix and the same paths)."
        ),
    ] = None,
    only_flagged: Annotated[
        Path | None,
        typer.Option(help="With --out-dir: correct only the scans this qc.csv of 'artefix qc' flagged."),
    ] = None,
    derivatives: Annotated[
        bool, typer.Option(help="With --out-dir: also correct the BIDS datasets in derivatives/.")
    ] = False,
) -> None:
    """Correct bias field, subsampling, motion and noise artefacts slice by slice.

    Each slice is z-normalised, corrected by the model and mapped back to its own mean and standard deviation,
    so the output is in the input's units; nothing is written unless the whole volume was corrected.

    With --out-dir DIR it corrects every scan of the INPUTs into DIR, mirroring their tree, each output with a
    JSON sidecar; a rerun corrects only what is missing, a scan that fails does not stop the others (exit 1).
    """
    from rich.console import Console

    from artefix.atomic import one_line
    from artefix.cli.progress import progress_bar
    from artefix.correction import ExecutionSettings, InferenceOptions, OutputSpec, correct_file
    from artefix.errors import ArtefixError

    heads, factors = parse_only(only), parse_strength(strength)

    def inference() -> InferenceOptions:  # what one scan and many scans are corrected with alike
        return InferenceOptions(
            only=heads,
            strength=factors,
            ensemble=ensemble,
            priors=priors,
            gates=gates,
            snr_scope=snr_scope.value,
        )

    if out_dir is not None:  # many scans (artefix.cli.correct_bulk)
        from artefix.cli.correct_bulk import bulk_correct

        if runtime is not Runtime.torch:
            raise InputError("--runtime onnx applies to one scan (INPUT OUTPUT), not to --out-dir")
        for name, value in (("--report", report), ("--residuals", residuals), ("--key", key)):
            if value is not None:
                raise InputError(f"{name} applies to one scan (INPUT OUTPUT), not to --out-dir")
        bulk_correct(
            paths,
            out_dir,
            model=model,
            inference=inference(),
            axis=axis,
            batch_size=batch_size,
            device=device,
            overwrite=overwrite,
            jobs=jobs,
            scheduler=scheduler,
            only_flagged=only_flagged,
            derivatives=derivatives,
            quiet=quiet,
        )
        return
    bulk_only = (("--jobs", jobs != 1), ("--scheduler", scheduler), ("--only-flagged", only_flagged))
    for name, given in (*bulk_only, ("--derivatives", derivatives)):
        if given:
            raise InputError(f"{name} needs --out-dir DIR (many scans)")
    if len(paths) != 2:
        raise InputError(f"give INPUT and OUTPUT (got {len(paths)} paths), or INPUT... --out-dir DIR for many scans")
    input, output = paths
    options, outputs = inference(), OutputSpec(residuals=residuals, report=report, overwrite=overwrite)
    progress, err_console = progress_bar("correcting", "slices", quiet)
    with progress:
        task = progress.add_task("correct", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        execution = ExecutionSettings(device=device, batch_size=batch_size, runtime=runtime.value, progress=update)
        try:
            run = correct_file(
                input, output, model=model, inference=options, outputs=outputs, execution=execution, axis=axis, key=key
            )
        except ArtefixError:
            raise
        except ValueError as exc:
            raise InputError(one_line(exc)) from exc
    if not quiet:
        _print_summary(run, Console())


def _print_summary(run, console) -> None:  # noqa: ANN001 - CorrectionRun, rich Console (lazy imports)
    from rich.table import Table

    record = run.record
    flagged = record.flagged()
    overall = record.overall()
    table = Table(title=f"{run.input.name} -> {run.output.name} ({run.model_card.get('name')})")
    table.add_column("artefact")
    table.add_column("applied")
    if record.detection is not None:
        table.add_column("detection", justify="right")
    table.add_column("mean |residual|", justify="right")
    table.add_column("flagged slices")
    for k, head in enumerate(record.heads):
        score = record.detection_mean(k)
        found = [] if record.detection is None else ["-" if score is None else f"{score:.2f}"]
        table.add_row(
            head,
            record.applied_label(head),
            *found,
            f"{overall[head]:.4g}",
            ", ".join(map(str, flagged[head])) or "-",
        )
    console.print(table)
    if record.gates_sentence():
        console.print(record.gates_sentence())
    truncation = record.kspace_sentence()
    if truncation:
        console.print(truncation)
    snr = record.snr_sentence()
    if snr:
        console.print(snr)
    rate = record.n_slices / record.seconds if record.seconds > 0 else float("inf")
    ensemble = f", self-ensemble of {record.ensemble}" if record.ensemble > 1 else ""
    console.print(
        f"{record.n_slices} slices in {record.seconds:.2f} s ({rate:.1f} slices/s) on {record.device}{ensemble}"
    )
    for head, path in run.residual_paths.items():
        console.print(f"residual {head}: {path}")
    if run.report is not None:
        console.print(f"report: {run.report} (summary {run.summary})")
