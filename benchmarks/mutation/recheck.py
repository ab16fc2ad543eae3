"""Re-test the mutants that survived a cosmic-ray session against the tests as they are now.

After tests are written to kill survivors, this applies each surviving mutant again (``cosmic-ray apply``),
runs the given tests, restores the module with git and prints one line per mutant: ``killed`` or
``SURVIVED`` (``TIMEOUT`` when the tests ran past ``--timeout``). Run it from a clean worktree of the commit
with the new tests (it edits the source in place); the session file is the one ``cosmic-ray exec`` filled.

Usage::

    python benchmarks/mutation/recheck.py SESSION.sqlite --tests "tests/artefacts tests/test_fft.py" [--out OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess


def survivors(session: str) -> list[tuple[str, str, int, int]]:
    """``(module, operator, occurrence, line)`` of every mutant the session recorded as surviving."""
    with sqlite3.connect(session) as db:
        rows = db.execute(
            "select s.module_path, s.operator_name, s.occurrence, s.start_pos_row from mutation_specs s "
            "join work_results r on s.job_id = r.job_id where r.test_outcome = 'SURVIVED' "
            "order by s.module_path, s.start_pos_row"
        ).fetchall()
    return [(str(m), str(op), int(occ), int(row)) for m, op, occ, row in rows]


def recheck(module: str, operator: str, occurrence: int, tests: list[str], timeout: float) -> str:
    """Apply one mutant, run ``tests`` and restore the module; the outcome in one word."""
    subprocess.run(["cosmic-ray", "apply", module, operator, str(occurrence)], check=True, capture_output=True)
    command = ["python", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-o", "addopts="]
    try:
        run = subprocess.run(
            [*command, *tests], env={**os.environ, "PYTHONPATH": "src"}, capture_output=True, timeout=timeout
        )
        return "killed" if run.returncode != 0 else "SURVIVED"
    except subprocess.TimeoutExpired:
        return "TIMEOUT"
    finally:
        subprocess.run(["git", "checkout", "--", module], check=True)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session", help="the cosmic-ray session file (.sqlite)")
    parser.add_argument("--tests", required=True, help="test paths, space-separated")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per test run")
    parser.add_argument("--out", help="also write the outcomes as JSON here")
    args = parser.parse_args()
    outcomes = []
    for module, operator, occurrence, line in survivors(args.session):
        outcome = recheck(module, operator, occurrence, args.tests.split(), args.timeout)
        outcomes.append(
            {"module": module, "line": line, "operator": operator, "occurrence": occurrence, "outcome": outcome}
        )
        print(module, line, operator, occurrence, outcome, flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(outcomes, fh, indent=1)


if __name__ == "__main__":
    main()
