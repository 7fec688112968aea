"""docs/tutorial.md runs: every ```python block, in order, and every output block it shows.

The page is read as a reader follows it, in a fresh folder:

- a ```python block whose first line is ``# file: NAME`` is saved as NAME in that folder
  (a later block with the same name replaces it, as the reader edits the file), and any
  module of that name already imported is forgotten, as a new Python session would;
- any other ```python block is typed into the section's Python session: each top-level
  statement is compiled on its own with the file name ``<stdin>`` in "single" mode, as the
  interactive interpreter does, so the simulated stacks in reports name the same lines the
  reader sees and an expression's value is echoed;
  every ``## `` section starts a new session;
- a ```sh block's ``python -m pytest ...`` lines run pytest (in process, with pytester) in
  that folder, its ``python -m percpu_kmem ...`` lines the command line (in process, with
  click's runner), and ``echo $?`` prints the last one's exit status; its other lines
  (pip, git) are not run;
- a ```text block is the output of what ran since the previous output block: each of its
  lines must be a line of that output (trailing spaces and pytest's timings aside); a line
  ending in ``...`` must start one, and a line that is only ``...`` stands for lines left out.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from percpu_kmem.cli import main as cli_main

pytestmark = pytest.mark.timeout(60)
pytest_plugins = ["pytester"]

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w*)\s*$")
FILE_LINE = re.compile(r"^# file: (\S+)\s*$")
#: TUTORIAL_DUMP=path: append every output to path instead of checking it (for writing the page)
DUMP = os.environ.get("TUTORIAL_DUMP")
TIMING = re.compile(r" in \d+\.\d+s\b")
MODEL_FRAME = re.compile(r"(\(percpu_kmem/[\w/]+\.py):\d+\)")


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(section title, fence language, body) of every fenced block, in order."""
    out = []
    section = ""
    lang = None
    body: list[str] = []
    for line in text.splitlines():
        if lang is None:
            if line.startswith("## "):
                section = line[3:].strip()
            m = FENCE.match(line)
            if m:
                lang, body = m.group(1), []
        elif line.startswith("```"):
            out.append((section, lang, "\n".join(body) + "\n"))
            lang = None
        else:
            body.append(line)
    assert lang is None, "docs/tutorial.md has an unclosed code fence"
    return out


def run_session_block(src: str, ns: dict[str, object]) -> str:
    """Run a block as typed at the interactive prompt, one top-level statement at a time."""
    buf = io.StringIO()
    lines = src.splitlines(keepends=True)
    with contextlib.redirect_stdout(buf):
        for node in ast.parse(src).body:
            start = node.lineno - 1
            if getattr(node, "decorator_list", None):
                start = min(d.lineno for d in node.decorator_list) - 1  # type: ignore[attr-defined]
            stmt = "".join(lines[start:node.end_lineno])
            exec(compile(stmt, "<stdin>", "single"), ns)  # "single": a value is echoed, as at the prompt
    return buf.getvalue()


def _normal(line: str) -> str:
    """A line as compared: timings, and the line numbers of the model's own frames in a
    call trace (which move with the code; the user's frames keep theirs)."""
    return MODEL_FRAME.sub(r"\1:N)", TIMING.sub(" in 0.00s", line.rstrip()))


def check_output(shown: str, got: str, where: str) -> None:
    have = [_normal(line) for line in got.splitlines()]
    for line in shown.splitlines():
        want = _normal(line)
        if not want.strip() or want.strip() == "...":
            continue
        if want.endswith("..."):
            prefix = want[:-3]
            assert any(h.startswith(prefix) for h in have), f"{where}: no output line starts with {prefix!r}\n{got}"
        else:
            assert want in have, f"{where}: the page shows {want!r}, the run printed:\n{got}"


def test_tutorial_runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = pytester.path
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    written: set[str] = set()
    ns: dict[str, object] = {}
    section = None
    got = ""
    ran = 0
    status = 0
    for sec, lang, body in blocks(TUTORIAL.read_text()):
        where = f"docs/tutorial.md, section {sec!r}"
        if sec != section:
            section, ns = sec, {"__name__": "__main__"}
            for mod in written:
                sys.modules.pop(mod, None)
        if lang == "python":
            first = body.splitlines()[0] if body.strip() else ""
            m = FILE_LINE.match(first)
            if m:
                (folder / m.group(1)).write_text(body)
                mod = m.group(1).removesuffix(".py")
                written.add(mod)
                sys.modules.pop(mod, None)
                continue
            got += run_session_block(body, ns)
            ran += 1
        elif lang == "sh":
            for line in body.splitlines():
                words = shlex.split(line, comments=True)
                if words[:3] == ["python", "-m", "percpu_kmem"]:
                    res_cli = CliRunner().invoke(cli_main, words[3:])
                    got += res_cli.output
                    status = res_cli.exit_code
                    ran += 1
                elif words == ["echo", "$?"]:
                    got += f"{status}\n"
                elif words[:3] == ["python", "-m", "pytest"]:
                    for mod in written:
                        sys.modules.pop(mod, None)
                    # xdist and hypothesis add 1.5 s to each in-process run and nothing here;
                    # pytest-benchmark, where installed, warns about the outer session's xdist
                    res = pytester.runpytest_inprocess(*words[3:], "-p", "no:cacheprovider", "-p", "no:xdist",
                                                       "-p", "no:hypothesispytest", "-p", "no:benchmark")
                    got += res.stdout.str() + "\n"
                    status = int(res.ret)
                    ran += 1
        elif lang == "text":
            if DUMP:  # writing the page: collect what each output block should show
                with open(DUMP, "a") as f:
                    f.write(f"----- {where}\n{got}\n")
            else:
                check_output(body, got, where)
            got = ""
    assert ran >= 10, "the tutorial lost its code blocks"
    for mod in written:
        sys.modules.pop(mod, None)


def test_blocks_are_fenced_for_what_they_are() -> None:
    """Shell commands and outputs are not python blocks, so nothing meant to run is skipped;
    and the blocks typed at the prompt paste there."""
    for sec, lang, body in blocks(TUTORIAL.read_text()):
        assert lang in ("python", "sh", "text"), f"section {sec!r}: a block fenced {lang!r}"
        if lang == "python":
            tree = ast.parse(body)  # every python block is Python
            if FILE_LINE.match(body.splitlines()[0]):
                continue
            # typed at the prompt: a compound statement ends with a blank line, or the
            # interactive interpreter takes the next line for part of it (a SyntaxError)
            lines = body.splitlines()
            for node in tree.body[:-1]:
                if isinstance(node, ast.stmt) and hasattr(node, "body"):
                    end = node.end_lineno or 0
                    assert end < len(lines) and not lines[end].strip(), (
                        f"section {sec!r}: a blank line must follow {lines[node.lineno - 1].strip()!r} "
                        f"for the block to paste at the prompt")
