"""Split a cosmic-ray session by module, and merge the parts' results back.

A session's test command is one for all its modules; when the tests of one module come last in it, each of
that module's mutants runs every other module's tests first. ``keep`` copies a session with only the pending
mutants of some modules (the finished results all kept), to run with a test command that puts their tests
first; ``merge`` copies the results of such a part back into the whole session.

Usage::

    python benchmarks/mutation/split_session.py keep WHOLE.sqlite PART.sqlite bias_field.py
    cosmic-ray exec benchmarks/mutation/artefacts_bias.toml PART.sqlite
    python benchmarks/mutation/split_session.py merge PART.sqlite WHOLE.sqlite
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3


def keep(whole: str, part: str, modules: list[str]) -> int:
    """Copy ``whole`` to ``part`` without the pending mutants of other modules; the number left pending."""
    shutil.copyfile(whole, part)
    with sqlite3.connect(part) as db:
        pending = db.execute(
            "select job_id, module_path from mutation_specs where job_id not in (select job_id from work_results)"
        ).fetchall()
        drop = [(job,) for job, module in pending if not any(module == m or module.endswith("/" + m) for m in modules)]
        db.executemany("delete from mutation_specs where job_id = ?", drop)
        db.executemany("delete from work_items where job_id = ?", drop)
    return len(pending) - len(drop)


def merge(part: str, whole: str) -> int:
    """Copy the results ``part`` has and ``whole`` lacks into ``whole``; the number copied."""
    with sqlite3.connect(whole) as db:
        done = {job for (job,) in db.execute("select job_id from work_results")}
        with sqlite3.connect(part) as src:
            rows = src.execute("select worker_outcome, output, test_outcome, diff, job_id from work_results").fetchall()
        new = [row for row in rows if row[-1] not in done]
        db.executemany(
            "insert into work_results (worker_outcome, output, test_outcome, diff, job_id) values (?, ?, ?, ?, ?)",
            new,
        )
    return len(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keep", help="copy a session with only some modules' pending mutants")
    k.add_argument("whole")
    k.add_argument("part")
    k.add_argument("modules", nargs="+", help="module file names (or path endings) whose pending mutants stay")
    m = sub.add_parser("merge", help="copy a part's new results into the whole session")
    m.add_argument("part")
    m.add_argument("whole")
    args = parser.parse_args()
    if args.command == "keep":
        print(f"{keep(args.whole, args.part, args.modules)} mutants pending in {args.part}")
    else:
        print(f"{merge(args.part, args.whole)} results merged into {args.whole}")


if __name__ == "__main__":
    main()
