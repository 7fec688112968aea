"""Run a command while busy-looping processes load the machine.

    python -m benchmarks.load --procs 4 -- python -m pytest -q -k free
    python -m benchmarks.load --procs 4 --repeat 50 -- python -m pytest -q -x -k free

The free-running policy uses real OS threads, so its verdicts must not depend
on how much CPU the host gives the test process. This starts ``--procs``
processes that spin (``while True: pass``) for as long as the command runs,
runs the command (``--repeat`` times, counting the runs that exit 0), then
stops the spinners it started. The spinners' pids are in the command's
environment as ``PERCPU_KMEM_LOAD_PIDS`` (space-separated).

Exit status: the command's own with one run; with ``--repeat``, 0 when every
run passed and 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SPIN = "while True:\n    pass\n"


def start_spinners(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that each keep one CPU busy until stopped."""
    return [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL)
            for _ in range(n)]


def stop_spinners(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop exactly the processes ``start_spinners`` started, and reap them."""
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description="Run a command while busy-looping processes load the machine.")
    ap.add_argument("--procs", type=int, default=4, help="busy-looping processes (default 4)")
    ap.add_argument("--repeat", type=int, default=1, help="run the command this many times (default 1)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        ap.error("give the command to run after --, e.g. -- python -m pytest -q -k free")
    if args.procs < 0:
        ap.error(f"--procs(={args.procs}) must be 0 or more")
    if args.repeat < 1:
        ap.error(f"--repeat(={args.repeat}) must be 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    spinners = start_spinners(args.procs)
    env = dict(os.environ, PERCPU_KMEM_LOAD_PIDS=" ".join(str(p.pid) for p in spinners))
    passed = 0
    rc = 0
    try:
        for i in range(args.repeat):
            t0 = time.monotonic()
            rc = subprocess.call(args.command, env=env)
            passed += rc == 0
            if args.repeat > 1:
                print(f"load: run {i + 1}/{args.repeat} exit {rc} in {time.monotonic() - t0:.1f}s "
                      f"({args.procs} busy processes)", flush=True)
    finally:
        stop_spinners(spinners)
    if args.repeat == 1:
        return rc
    print(f"load: {passed} of {args.repeat} runs passed under {args.procs} busy processes", flush=True)
    return 0 if passed == args.repeat else 1


if __name__ == "__main__":
    sys.exit(main())
