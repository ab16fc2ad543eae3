"""Shared tuning studies on PostgreSQL: the driver, the URL, the error without it, two workers on a real server.

The server tests start PostgreSQL (Debian's ``postgresql`` package: ``initdb``, ``pg_ctl``) in a temporary
folder; without it they skip, or fail where ``ARTEFIX_REQUIRE_SHARED_DATA=1`` (CI).
"""

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

import artefix.training.tune as tune_module
from artefix.cli import main
from artefix.errors import InputError
from artefix.training.tune import POSTGRES_MISSING, make_storage, mask_url, storage_url

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
SMALL = ["tune.max_epochs=1", "data.repeats=2", "data.val_repeats=2", "trainer.val_metrics=[mse]"]
CLI = [sys.executable, "-c", "from artefix.cli import main; main()"]
SECRET = "s3cret-Pa55"  # trust authentication ignores it; it must never be printed
CLI_MISSING = "--storage postgresql://... needs a PostgreSQL driver: pip install 'artefix[postgres]'"


def _drivers(monkeypatch, *installed):
    """Pretend that only the modules ``installed`` import."""
    monkeypatch.setattr(tune_module, "_importable", lambda module: module in installed)


def test_postgresql_urls_use_the_installed_driver(monkeypatch):
    url = f"postgresql://tuner:{SECRET}@db.example:5432/studies"
    _drivers(monkeypatch, "psycopg")
    assert storage_url(url) == f"postgresql+psycopg://tuner:{SECRET}@db.example:5432/studies"
    _drivers(monkeypatch, "psycopg2", "psycopg")
    assert storage_url(url) == url  # SQLAlchemy's default driver
    _drivers(monkeypatch, "psycopg2")
    assert storage_url(url) == url
    _drivers(monkeypatch)
    for other in ("postgresql+psycopg2://u:p@h/db", "postgresql+psycopg://h/db", "sqlite:///x.db", "journal:/x.log"):
        assert storage_url(other) == other  # a named driver, or another database: as given


def test_without_a_driver_one_line_names_the_extra_and_hides_the_password(monkeypatch, tmp_path, capsys):
    url = f"postgresql://tuner:{SECRET}@db.example:5432/studies"
    _drivers(monkeypatch)
    with pytest.raises(InputError) as exc:
        make_storage(url)
    assert str(exc.value) == POSTGRES_MISSING and exc.value.cli_message() == CLI_MISSING
    argv = ["artefix", "tune", str(TINY), "--trials", "1", "--out", str(tmp_path / "t"), "--storage", url]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    assert done.value.code == 2 and out.err == f"error: {CLI_MISSING}\n"
    assert SECRET not in out.out + out.err


def test_workers_that_race_to_create_the_tables_try_again(monkeypatch):
    class ProgrammingError(Exception):  # as SQLAlchemy names it; PostgreSQL's words when another worker won
        pass

    attempts = []

    def storage(url, **kwargs):
        attempts.append(url)
        if len(attempts) == 1:
            raise ProgrammingError('(psycopg.errors.DuplicateObject) type "studydirection" already exists')
        return "storage"

    _drivers(monkeypatch, "psycopg")
    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    monkeypatch.setattr(tune_module, "time", SimpleNamespace(sleep=lambda seconds: None))
    assert make_storage("postgresql://h/db") == "storage"
    assert attempts == ["postgresql+psycopg://h/db"] * 2


def test_passwords_are_masked_in_urls_and_messages():
    assert mask_url(f"postgresql://tuner:{SECRET}@db:5432/s") == "postgresql://tuner:***@db:5432/s"
    assert mask_url(f"mysql+pymysql://u:p@ss{SECRET}@db/s") == "mysql+pymysql://u:***@db/s"  # unescaped "@"
    assert mask_url(f"postgresql://db/s?user=u&password={SECRET}&x=1") == "postgresql://db/s?user=u&password=***&x=1"
    message = f"cannot open 'postgresql+psycopg://u:{SECRET}@h/db': see postgresql://v:pw@h2/db"
    assert mask_url(message) == "cannot open 'postgresql+psycopg://u:***@h/db': see postgresql://v:***@h2/db"
    for plain in ("postgresql://u@db/s", "sqlite:////tmp/study.db", "journal:/shared/study.log"):
        assert mask_url(plain) == plain


def _postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: from PATH, else Debian's newest ``/usr/lib/postgresql/N/bin``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parts[-3].isdigit()]
    return max(candidates, key=lambda p: int(p.parts[-3])).parent if candidates else None


def _driver_dir() -> Path:
    """Where psycopg (3) or psycopg2 is installed (a missing folder where neither is)."""
    for name in ("psycopg", "psycopg2"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            return Path(spec.origin).parent
    return Path(sysconfig.get_paths()["purelib"]) / "psycopg"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url(require_shared):
    """``postgresql://postgres:SECRET@127.0.0.1:PORT/artefix`` of a PostgreSQL server that runs during the module.

    The server (trust authentication) lives in a temporary folder of the system's (short enough for its Unix
    socket); run as root, it runs as ``nobody``, since PostgreSQL refuses root. It is stopped and its folder
    removed afterwards, however the tests end.
    """
    bindir = _postgres_bin()
    require_shared(
        bindir or Path("/usr/lib/postgresql/N/bin"), "PostgreSQL's initdb (apt-get install postgresql; PATH searched)"
    )
    require_shared(_driver_dir(), "a PostgreSQL driver (pip install 'artefix[postgres]')")
    as_user: dict = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid}
    base = Path(tempfile.mkdtemp(prefix="artefix-pg-"))
    data, log = base / "data", base / "server.log"
    if as_user:
        os.chown(base, as_user["user"], as_user["group"])
    port = _free_port()

    def server(*args: str, owner: bool = True) -> subprocess.CompletedProcess:
        """Run the server program ``args[0]``: as the data folder's owner, or (``owner=False``) as a client."""
        return subprocess.run(
            [str(bindir / args[0]), *args[1:]], cwd=base, capture_output=True, text=True, **(as_user if owner else {})
        )

    def check(done: subprocess.CompletedProcess, what: str) -> None:
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            pytest.fail(f"PostgreSQL: {what} failed ({done.returncode}): {done.stderr}{done.stdout}\n{tail}")

    try:
        initdb = ("-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync")
        check(server("initdb", "-D", str(data), *initdb), "initdb")
        options = f"-k {base} -p {port} -c listen_addresses=127.0.0.1"
        check(server("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"), "start")
        client = ("-h", "127.0.0.1", "-p", str(port), "-U", "postgres")
        check(server("createdb", *client, "artefix", owner=False), "createdb")
        yield f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/artefix"
    finally:
        if (data / "postmaster.pid").exists():
            server("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_unreachable_database_error_hides_the_password(postgres_url, monkeypatch):
    monkeypatch.setattr(tune_module, "STORAGE_ATTEMPTS", 1)
    url = postgres_url.replace("/artefix", "/no_such_database")
    with pytest.raises(InputError, match="cannot open the study storage") as exc:
        make_storage(url)
    assert "no_such_database" in str(exc.value) and "postgres:***@" in str(exc.value)
    assert SECRET not in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(postgres_url, tmp_path):
    command = [*CLI, "tune", str(TINY), "--trials", "2", "--study", "shared", "--storage", postgres_url]
    for item in SMALL:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    workers = [  # two "machines": their own output folders, one study
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"w{seed}"), "--seed", str(seed)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in (1, 2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-3000:]
        assert "storage: postgresql://postgres:***@127.0.0.1" in out.decode()
        assert SECRET.encode() not in out + err
    storage = make_storage(postgres_url)
    assert optuna.study.get_all_study_names(storage) == ["shared"]
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # the sum of both workers' trials, no duplicates
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    host = socket.gethostname()
    by_worker = {f"{host}:{w.pid}": tmp_path / f"w{seed}" for w, seed in zip(workers, (1, 2), strict=True)}
    assert sorted(t.user_attrs["worker"] for t in trials) == sorted([*by_worker, *by_worker])  # two trials each
    for t in trials:  # each worker trained its own trials in its own folder
        assert Path(t.user_attrs["run_dir"]).parent.parent == by_worker[t.user_attrs["worker"]] / "trials"
