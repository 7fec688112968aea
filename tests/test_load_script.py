"""benchmarks/load.py: busy processes live exactly as long as the command, and exit codes are kept."""

from __future__ import annotations

import os
import sys

import pytest

from benchmarks import load

pytestmark = pytest.mark.timeout(60)

# The command checks that every spinner named in its environment is alive, and records the pids.
CHECK = ("import os, sys; pids = [int(p) for p in os.environ['PERCPU_KMEM_LOAD_PIDS'].split()]; "
         "[os.kill(p, 0) for p in pids]; open(sys.argv[1], 'a').write(' '.join(map(str, pids)) + '\\n'); "
         "sys.exit(int(sys.argv[2]))")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_spinners_run_during_the_command_and_are_stopped_after(tmp_path) -> None:
    out = tmp_path / "pids"
    rc = load.main(["--procs", "3", "--", sys.executable, "-c", CHECK, str(out), "0"])
    assert rc == 0
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) == 3 and len(set(pids)) == 3
    assert not any(alive(p) for p in pids)  # stopped and reaped


def test_the_command_exit_status_is_returned(tmp_path) -> None:
    assert load.main(["--procs", "1", "--", sys.executable, "-c", CHECK, str(tmp_path / "p"), "3"]) == 3


def test_repeat_counts_passing_runs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pids"
    assert load.main(["--procs", "1", "--repeat", "3", "--", sys.executable, "-c", CHECK, str(out), "0"]) == 0
    assert "load: 3 of 3 runs passed under 1 busy processes" in capsys.readouterr().out
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and len(set(lines)) == 1  # the same spinners for every run
    assert load.main(["--procs", "0", "--repeat", "2", "--", sys.executable, "-c", "raise SystemExit(1)"]) == 1
    assert "load: 0 of 2 runs passed" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["--procs", "2"], ["--procs", "-1", "--", "true"],
                                  ["--repeat", "0", "--", "true"]])
def test_bad_arguments_are_refused_before_starting_anything(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        load.main(argv)
    assert ei.value.code == 2
