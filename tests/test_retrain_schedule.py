"""scripts/retrain_schedule.sh, run from a copy in a temporary checkout against a fake crontab.

The real crontab, logs/ and lock of this checkout are never touched: the script finds its
checkout from its own location, and CRONTAB_CMD points it at a fake that keeps the table in a file.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "retrain_schedule.sh"
DEFAULT_SCHEDULE = "0 3 * * 1"
TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"

# Behaves like crontab(1) for -l and -: "no crontab for ..." and exit 1 while there is none.
# FAKE_CRONTAB_BROKEN makes reading fail otherwise, while writing still works.
FAKE_CRONTAB = """#!/usr/bin/env bash
set -euo pipefail
case "$1" in
  -l) if [[ -n "${FAKE_CRONTAB_BROKEN:-}" ]]; then echo "crontab: permission denied" >&2; exit 1
      elif [[ -f "$FAKE_CRONTAB_FILE" ]]; then cat "$FAKE_CRONTAB_FILE"; else echo "no crontab for tester" >&2; exit 1; fi ;;
  -) cat >"$FAKE_CRONTAB_FILE" ;;
  *) echo "fake crontab: unsupported $*" >&2; exit 2 ;;
esac
"""


class Checkout:
    """A throwaway checkout holding a copy of the script, and the fake crontab's table."""

    def __init__(self, root: Path):
        self.root = root / "checkout"
        self.script = self.root / "scripts" / "retrain_schedule.sh"
        self.script.parent.mkdir(parents=True)
        shutil.copy2(SCRIPT, self.script)
        self.table = root / "crontab.txt"
        fake_crontab = root / "bin" / "crontab"
        fake_crontab.parent.mkdir()
        fake_crontab.write_text(FAKE_CRONTAB)
        fake_crontab.chmod(0o755)
        self.env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("RETRAIN_COMMAND", "RETRAIN_CONFIG", "RECOMMEND_COMMAND", "FAKE_CRONTAB_BROKEN")
        } | {"CRONTAB_CMD": str(fake_crontab), "FAKE_CRONTAB_FILE": str(self.table)}

    @property
    def log(self) -> str:
        return (self.root / "logs" / "retrain.log").read_text()

    @property
    def marker(self) -> str:
        return f"# movielens-retrain: {self.root.resolve()}"

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        # Started from elsewhere, as cron does, to show that the script finds its checkout itself.
        return subprocess.run(
            ["bash", str(self.script), *args],
            env=self.env | env,
            cwd=self.root.parent,
            capture_output=True,
            text=True,
            timeout=20,
        )

    def table_lines(self) -> list[str]:
        return self.table.read_text().splitlines()


@pytest.fixture
def checkout(tmp_path) -> Checkout:
    return Checkout(tmp_path)


def test_install_is_idempotent_and_list_shows_the_entry(checkout):
    assert checkout.run("install").returncode == 0
    assert checkout.run("install").returncode == 0

    lines = checkout.table_lines()
    assert len(lines) == 1
    assert lines[0] == f"{DEFAULT_SCHEDULE} {checkout.script.resolve()} run {checkout.marker}"
    listed = checkout.run("list")
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == lines
    assert (checkout.root / "logs").is_dir()


def test_install_with_a_schedule_replaces_the_previous_one(checkout):
    checkout.run("install")

    assert checkout.run("install", "30 2 * * *").returncode == 0

    assert [line.split(" /")[0] for line in checkout.table_lines()] == ["30 2 * * *"]


def test_install_and_remove_leave_other_lines_alone(checkout):
    foreign = [
        "MAILTO=''",
        "0 1 * * * /usr/bin/true # someone else's job",
        # Another clone whose path starts with this one's: its entry is not ours.
        f"0 4 * * 1 /elsewhere/scripts/retrain_schedule.sh run {checkout.marker}2",
    ]
    checkout.table.write_text("\n".join(foreign) + "\n")

    checkout.run("install")
    assert checkout.table_lines()[:-1] == foreign
    assert checkout.table_lines()[-1].endswith(checkout.marker)

    removed = checkout.run("remove")
    assert removed.returncode == 0
    assert checkout.table_lines() == foreign
    assert "No retraining scheduled" in checkout.run("list").stdout
    assert "nothing to remove" in checkout.run("remove").stdout


def test_an_unreadable_crontab_is_never_overwritten(checkout):
    checkout.table.write_text("0 1 * * * /usr/bin/true\n")

    result = checkout.run("install", FAKE_CRONTAB_BROKEN="1")

    assert result.returncode != 0
    assert "permission denied" in result.stderr
    assert checkout.table_lines() == ["0 1 * * * /usr/bin/true"]


@pytest.mark.parametrize("args", [("install", "0 3 * *"), ("install", "0", "3", "*", "*", "1"), ("nonsense",)])
def test_bad_arguments_are_refused_without_touching_the_crontab(checkout, args):
    result = checkout.run(*args)

    assert result.returncode != 0
    assert not checkout.table.exists()


def test_a_missing_crontab_program_says_how_to_install_cron(checkout):
    result = checkout.run("install", CRONTAB_CMD="no-such-crontab-program")

    assert result.returncode == 1
    assert "apt-get install cron" in result.stderr


def test_run_appends_timestamped_output_to_the_log(checkout):
    first = checkout.run("run", RETRAIN_COMMAND="echo ran; echo complained >&2")
    second = checkout.run("run", RETRAIN_COMMAND="exit 3")

    assert first.returncode == 0
    assert second.returncode == 3  # a failed retraining fails the run, for cron and systemd to see
    log = checkout.log
    assert re.search(rf"^{TIMESTAMP} ran$", log, re.MULTILINE)
    assert re.search(rf"^{TIMESTAMP} complained$", log, re.MULTILINE)
    assert re.search(rf"^{TIMESTAMP} \[retrain_schedule\] finished with exit status 0$", log, re.MULTILINE)
    assert log.rstrip().endswith("finished with exit status 3")


def test_batch_recommendations_follow_a_retraining_that_succeeded_and_only_then(checkout):
    assert checkout.run("run", RETRAIN_COMMAND="echo trained", RECOMMEND_COMMAND="echo recommended").returncode == 0
    assert checkout.run("run", RETRAIN_COMMAND="exit 4", RECOMMEND_COMMAND="echo never").returncode == 4
    log = checkout.log
    assert re.search(rf"^{TIMESTAMP} recommended$", log, re.MULTILINE) and "never" not in log
    assert "batch recommendations finished with exit status 0" in log


def test_run_makes_the_retrain_config_from_the_checkout_with_a_cron_path(checkout):
    # A stand-in for make in the checkout's venv, which run puts first on PATH.
    fake_make = checkout.root / ".venv" / "bin" / "make"
    fake_make.parent.mkdir(parents=True)
    fake_make.write_text('#!/bin/sh\necho "make $* in $(pwd)"\n')
    fake_make.chmod(0o755)

    checkout.run("run", PATH="/usr/bin:/bin")  # cron's PATH
    checkout.run("run", PATH="/usr/bin:/bin", RETRAIN_CONFIG="configs/smoke.yaml")

    assert f"make run CONFIG=configs/retrain.yaml in {checkout.root.resolve()}" in checkout.log
    assert "make run CONFIG=configs/smoke.yaml" in checkout.log


def test_run_does_nothing_while_another_process_holds_the_lock(checkout):
    lock_file = checkout.root / "logs" / "retrain.lock"
    lock_file.parent.mkdir()
    started = checkout.root / "started"
    with lock_file.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        began = time.monotonic()
        blocked = checkout.run("run", RETRAIN_COMMAND=f"touch {started}")
        elapsed = time.monotonic() - began

    assert blocked.returncode == 0
    assert elapsed < 5
    assert "already running" in checkout.log
    assert not started.exists()
    # Once the lock is free again, the next start runs.
    assert checkout.run("run", RETRAIN_COMMAND=f"touch {started}").returncode == 0
    assert started.exists()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
