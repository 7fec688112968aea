"""pytest plugin: a booted machine as a fixture, a marker that runs a test over
seeds, CPU counts and policies, and a seed-range option for explore().

Kept light: importing it does not import the model (a test that uses neither the
fixture nor the marker never loads it).

- The ``kmem_machine`` fixture is a booted ``Machine``. After the test body the
  plugin gives the run its verdict, as ``explore()`` does: ``m.check()`` runs, and a
  kernel report whose kind the test did not expect fails the test. A failure names
  the first report, the policy and seed, and the commands that repeat the run.
- ``@pytest.mark.kmem(seeds=N, cpus=(2, 4), policies=None, expect=(), check=True,
  **machine_kw)`` turns a test using ``kmem_machine`` into one test per CPU count and
  seed (``seeds`` an int or an iterable of seeds; default: ``--kmem-seeds`` or 20).
  ``policies=None`` is the default campaign, rotated by seed as the command line
  does; a name or several run every seed under each. Each combination is an item
  of its own (``test_x[cpus2-pct-seed3]``), so pytest-xdist spreads them over its
  workers. ``machine_kw`` go to ``Machine`` (``memory``, ``slab_debug``, ``lockdep``...).

- ``--kmem-seeds=N`` sets how many seeds every ``percpu_kmem.testing.explore``
  call that uses the default range (``seeds=None``) explores: ``range(N)`` per
  policy. It works through ``PERCPU_KMEM_SEEDS``, which it sets for the session
  (so subprocesses see it too) and restores when the session ends; without the
  option, a ``PERCPU_KMEM_SEEDS`` already in the environment is used. Calls that
  pass their own ``seeds=`` are left as they are.
- ``@pytest.mark.kmem_slow``: long stress runs, skipped unless ``--kmem-slow``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Generator, Iterable
from typing import Any, NoReturn

import pytest

OPT_SEEDS = "--kmem-seeds"
OPT_SLOW = "--kmem-slow"
SEEDS_ENV = "PERCPU_KMEM_SEEDS"  # the same name as percpu_kmem.testing.SEEDS_ENV
FIXTURE = "kmem_machine"
MARKER = "kmem"
#: CPU count of ``kmem_machine`` when no marker names one.
DEFAULT_CPUS = 2

_saved_env = pytest.StashKey[tuple[bool, str]]()


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{OPT_SEEDS} takes a positive number of seeds, got {text!r}")
    return n


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("percpu_kmem")
    group.addoption(OPT_SEEDS, type=_positive_int, default=None, metavar="N",
                    help=f"seeds per policy for explore() calls with the default range ({SEEDS_ENV})")
    group.addoption(OPT_SLOW, action="store_true", default=False, help="run tests marked kmem_slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kmem_slow: long stress test, run with --kmem-slow")
    config.addinivalue_line("markers", f"{MARKER}(seeds=N, cpus=(2,), policies=None, expect=(), check=True, "
                                       f"**machine_kw): run a test using {FIXTURE} over CPU counts, policies "
                                       f"and seeds")
    seeds = config.getoption(OPT_SEEDS)
    if seeds is not None:
        config.stash[_saved_env] = (SEEDS_ENV in os.environ, os.environ.get(SEEDS_ENV, ""))
        os.environ[SEEDS_ENV] = str(seeds)


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(_saved_env, None)
    if saved is None:
        return
    had, value = saved
    if had:
        os.environ[SEEDS_ENV] = value
    else:
        os.environ.pop(SEEDS_ENV, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption(OPT_SLOW):
        return
    skip = pytest.mark.skip(reason=f"slow stress test: run with {OPT_SLOW}")
    for item in items:
        if "kmem_slow" in item.keywords:
            item.add_marker(skip)


def _usage(msg: str) -> NoReturn:
    """A misused marker: the message alone, as the test's (or the file's collection) error,
    without a traceback through pytest's hooks."""
    pytest.fail(msg, pytrace=False)


def _ints(value: Any, what: str) -> list[int]:
    one = isinstance(value, (int, str)) or not isinstance(value, Iterable)  # cpus="two" is one bad value
    items: list[Any] = [value] if one else list(value)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            _usage(f"@pytest.mark.{MARKER}({what}=...) takes ints >= 0, got {v!r}")
    if not items:
        _usage(f"@pytest.mark.{MARKER}({what}=...) is empty")
    return [int(v) for v in items]


def _marker_args(marker: pytest.Mark | None) -> dict[str, Any]:
    """The marker's arguments, checked, with the defaults filled in."""
    kw = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        _usage(f"@pytest.mark.{MARKER} takes keyword arguments only, got {marker.args!r}")
    seeds = kw.pop("seeds", None)
    if seeds is None:
        from .testing import seeds_from_env
        seed_list = list(seeds_from_env())
    elif isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            _usage(f"@pytest.mark.{MARKER}(seeds={seeds!r}) must be positive")
        seed_list = list(range(seeds))
    else:
        seed_list = _ints(seeds, "seeds")
    cpus = _ints(kw.pop("cpus", DEFAULT_CPUS), "cpus")
    policies = kw.pop("policies", None)
    if isinstance(policies, str):
        policies = [policies]
    from .runtime.errors import KmemUsageError
    from .testing import _expect_kinds
    try:
        expect = _expect_kinds(kw.pop("expect", ()), f"@pytest.mark.{MARKER}")
    except KmemUsageError as e:
        bad_expect = str(e)
    else:
        bad_expect = ""
    if bad_expect:
        _usage(bad_expect)
    check = kw.pop("check", True)
    if not isinstance(check, bool):
        _usage(f"@pytest.mark.{MARKER}(check={check!r}) must be True or False")
    for bad in ("policy", "seed", "replay"):
        if bad in kw:
            _usage(f"@pytest.mark.{MARKER}({bad}=...): the marker chooses the {bad} of each run "
                   f"(use seeds=/policies=)")
    return {"seeds": seed_list, "cpus": cpus, "policies": policies, "expect": expect, "check": check,
            "machine": kw}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if FIXTURE not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(MARKER)
    args = _marker_args(marker)
    if marker is None:  # one plain machine: the default policy, seed 0
        runs: list[tuple[str, dict[str, Any], int]] = [("random", {}, 0)]
    else:
        from .campaign import plan
        from .runtime.errors import KmemUsageError
        try:
            runs = plan(args["seeds"], args["policies"])
        except KmemUsageError as e:
            refused = str(e)
        else:
            refused = ""
        if refused:
            _usage(f"@pytest.mark.{MARKER}: {refused}")
    params, ids = [], []
    for cpus in args["cpus"]:
        for policy, options, seed in runs:
            params.append({"expect": args["expect"], "check": args["check"], "machine": args["machine"],
                           "cpus": cpus, "policy": policy, "options": options, "seed": seed})
            opt = "".join(f"-{k}{v}" for k, v in sorted(options.items()))
            ids.append(f"cpus{cpus}-{policy}{opt}-seed{seed}")
    metafunc.parametrize(FIXTURE, params, ids=ids, indirect=True)


@pytest.fixture
def kmem_machine(request: pytest.FixtureRequest) -> Any:
    """A booted percpu_kmem Machine; the run gets explore()'s verdict after the test."""
    from .machine import Machine
    from .runtime.errors import KmemUsageError
    p = request.param
    try:
        m = Machine(cpus=p["cpus"], policy=p["policy"], seed=p["seed"], **p["options"], **p["machine"])
    except KmemUsageError as e:  # the marker's machine arguments: the message, not the model's frames
        refused = str(e)
    else:
        request.node.stash[_run_key] = (m, p)
        return m
    _usage(f"@pytest.mark.{MARKER}: the machine is refused: {refused}")


_run_key = pytest.StashKey[tuple[Any, dict[str, Any]]]()


def _replay_lines(item: pytest.Item, m: Any, p: dict[str, Any]) -> list[str]:
    lines = [f"percpu_kmem: failed under cpus={p['cpus']} policy={p['policy']!r} seed={p['seed']}",
             f"rerun this case with: pytest {item.nodeid!r}"]
    if m.last_trace is not None:
        lines.append(m.replay_hint())
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    run = item.stash.get(_run_key, None)
    if run is None:
        return (yield)
    m, p = run
    try:
        result = yield
    except BaseException as e:
        for line in _replay_lines(item, m, p):
            e.add_note(line)
        raise
    if p["check"]:
        try:
            m.check()
        except Exception as e:
            for line in _replay_lines(item, m, p):
                e.add_note(line)
            raise
    unexpected = [r for r in m.reports if r.kind not in p["expect"]]
    if unexpected:
        kinds = sorted({r.kind for r in unexpected})
        more = f" ({len(unexpected)} reports: {', '.join(kinds)})" if len(unexpected) > 1 else ""
        msg = "\n".join([f"the run recorded an unexpected {unexpected[0].kind!r} report{more}:",
                         unexpected[0].text, *_replay_lines(item, m, p)])
        pytest.fail(msg, pytrace=False)
    return result


__all__ = ["OPT_SEEDS", "OPT_SLOW", "SEEDS_ENV", "FIXTURE", "MARKER", "DEFAULT_CPUS", "pytest_addoption",
           "pytest_configure", "pytest_unconfigure", "pytest_collection_modifyitems", "pytest_generate_tests",
           "kmem_machine", "pytest_runtest_call"]
