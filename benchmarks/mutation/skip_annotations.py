"""Mark the pending mutants of ``|`` inside type annotations of a cosmic-ray session as skipped.

Every module of artefix starts with ``from __future__ import annotations``: annotations stay strings and are
never evaluated (no module calls ``typing.get_type_hints`` on them; typer does on the command line's
functions, which are not mutated), so ``str | None`` mutated to ``str - None`` cannot change behaviour.
Each such mutant still costs a whole test run to survive (a minute for the correction modules), so they are
skipped the way ``cr-filter-operators`` skips an excluded operator: a result with the ``skipped`` worker
outcome and no test outcome. Run it after ``cr-filter-operators``, before ``cosmic-ray exec``, from the
worktree the session was made in (module paths are relative to it).

Usage::

    python benchmarks/mutation/skip_annotations.py SESSION.sqlite
"""

from __future__ import annotations

import argparse
import ast
import sqlite3
from pathlib import Path

NOTE = "annotation: never evaluated under `from __future__ import annotations`"


def annotation_operators(source: str) -> set[tuple[int, int]]:
    """``(line, column)`` of every binary operator inside an annotation of ``source`` (1-based lines).

    The column is that of the operator's token, as cosmic-ray records it (``start_pos``): the first
    non-blank character between the left operand's end and the right operand's start.
    """
    lines = source.splitlines()
    annotations = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            annotations.append(node.returns)
    found = set()
    for annotation in annotations:
        for op in ast.walk(annotation):
            if isinstance(op, ast.BinOp):
                found.add(_next_token(lines, op.left.end_lineno, op.left.end_col_offset))
    return found


def _next_token(lines: list[str], row: int, col: int) -> tuple[int, int]:
    """``(line, column)`` of the first character at or after ``(row, col)`` that is not blank or ``)``."""
    while True:
        rest = lines[row - 1][col:]
        if not rest.strip():
            row, col = row + 1, 0
        elif rest[0] in " )":
            col += 1
        else:
            return row, col


def skip_annotations(session: str, root: Path = Path()) -> int:
    """Mark the session's pending binary-operator mutants inside annotations as skipped; how many."""
    with sqlite3.connect(session) as db:
        pending = db.execute(
            "select job_id, module_path, start_pos_row, start_pos_col from mutation_specs "
            "where operator_name like 'core/ReplaceBinaryOperator_%' "
            "and job_id not in (select job_id from work_results)"
        ).fetchall()
        positions: dict[str, set[tuple[int, int]]] = {}
        skipped = []
        for job, module, row, col in pending:
            if module not in positions:
                positions[module] = annotation_operators((root / module).read_text())
            if (row, col) in positions[module]:
                skipped.append((NOTE, job))
        db.executemany(
            "insert into work_results (worker_outcome, output, test_outcome, diff, job_id) "
            "values ('SKIPPED', ?, NULL, NULL, ?)",
            skipped,
        )
    return len(skipped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session")
    args = parser.parse_args()
    print(f"{skip_annotations(args.session)} annotation mutants marked skipped in {args.session}")


if __name__ == "__main__":
    main()
