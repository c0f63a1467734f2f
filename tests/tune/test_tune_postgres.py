"""``litforge tune --storage postgresql://...`` against a real, throwaway PostgreSQL server.

The fixture starts its own server on a free loopback port from the binaries in /usr/lib/postgresql/*/bin
(``.ci/run`` installs them). Under ``CI=true`` a missing server is a failure, never a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tune_helpers import (
    LR_SPACE,
    TINY_TRIAL,
    TUNE_TIMEOUT,
    check_dead_trial_sweeper,
    finished_trials,
    load_study,
)

from litforge.tune.optuna_factories import make_storage, with_driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    bindir = Path(initdbs[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="litforge-pg-"))
    # postgres refuses to run as root: run it as the postgres user, in a folder it owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "litforge")
        yield f"postgresql://postgres@127.0.0.1:{port}/litforge"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
def test_two_workers_share_one_study_in_postgresql(cli, tmp_path, write_space, postgres_url) -> None:
    path = write_space(LR_SPACE)
    out = tmp_path / "search"
    args = ["--space", str(path), "--out", str(out), "--storage", postgres_url, "--study-name", "pg"]
    result = cli(
        "tune",
        *args,
        "--n-trials",
        "2",
        "--workers",
        "2",
        "--pruner",
        "none",
        *TINY_TRIAL,
        timeout=TUNE_TIMEOUT,
    )
    assert result.returncode == 0, result.output[-3000:]
    assert "[worker 0]" in result.stdout and "[worker 1]" in result.stdout
    study = load_study(with_driver(postgres_url), "pg")
    assert len(finished_trials(study)) == 2
    assert not (out / "study.db").exists()
    assert (out / "best.yaml").is_file() and (out / "trials.csv").is_file()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trials_without_a_heartbeat_are_found_in_postgresql(postgres_url) -> None:
    check_dead_trial_sweeper(make_storage(postgres_url, heartbeat_s=60))
