"""Split a cosmic-ray session by module, and merge the parts' results back.

A session's test command is one for all its modules; when the tests of one module come last in it, each of
that module's mutants runs every other module's tests first. ``keep`` copies a session with only the pending
mutants of some modules (the finished results all kept), to run with a test command that puts their tests
first; ``merge`` copies the results of such a part back into the whole session.

Usage::

    python benchmarks/mutation/split_session.py keep WHOLE.sqlite PART.sqlite bias_field.py
    cosmic-ray exec benchmarks/mutation/artefacts_bias.toml PART.sqlite
    python benchmarks/mutation/split_session.py merge PART.sqlite WHOLE.sqlite

``keep ... --share 1/2`` and ``--share 2/2`` split one module's pending mutants in two, one part per core.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3


def keep(whole: str, part: str, modules: list[str], share: tuple[int, int] = (1, 1)) -> int:
    """Copy ``whole`` to ``part`` without the pending mutants of other modules; the number left pending.

    ``share = (k, n)`` keeps only the k-th of every n of those (by job id), to run one module on n cores.
    """
    k, n = share
    shutil.copyfile(whole, part)
    with sqlite3.connect(part) as db:
        pending = db.execute(
            "select job_id, module_path from mutation_specs "
            "where job_id not in (select job_id from work_results) order by job_id"
        ).fetchall()
        mine = [job for job, module in pending if any(module == m or module.endswith("/" + m) for m in modules)]
        kept = set(mine[k - 1 :: n])
        drop = [(job,) for job, _ in pending if job not in kept]
        db.executemany("delete from mutation_specs where job_id = ?", drop)
        db.executemany("delete from work_items where job_id = ?", drop)
    return len(kept)


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
    k.add_argument("--share", default="1/1", help="K/N: keep the K-th of every N of them (one part per core)")
    m = sub.add_parser("merge", help="copy a part's new results into the whole session")
    m.add_argument("part")
    m.add_argument("whole")
    args = parser.parse_args()
    if args.command == "keep":
        k_of_n = tuple(int(v) for v in args.share.split("/"))
        print(f"{keep(args.whole, args.part, args.modules, k_of_n)} mutants pending in {args.part}")
    else:
        print(f"{merge(args.part, args.whole)} results merged into {args.whole}")


if __name__ == "__main__":
    main()
