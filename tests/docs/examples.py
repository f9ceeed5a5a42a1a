"""The runnable examples of the documentation: fenced blocks taken out of Markdown and run in document order.

The rules (CONTRIBUTING.md, *Examples in the docs*, says the same for authors):

* A ```bash, ```sh or ```shell block runs with `bash -euo pipefail`, a ```python block with the project's
  Python. A block in any other language (``text``, ``console``, ``yaml``, ``json``, ``mermaid``, ...) is
  not run, and a fence without a language is refused (`unlabelled_fences`): nothing meant to run is
  skipped because its fence was left bare.
* The blocks of a document run in order, each in a process of its own, from the repository root, with the
  document's environment (`document_env`): what one block leaves on disk or keeps running, the next one
  sees; variables and `cd` do not carry over.
* A command on a line of its own that ends in `&` starts a server: once the block has exited, the runner
  waits until every server it started answers (`SERVERS`), and stops them (the block's whole process
  group) when the next heading begins, or at the end of the document.
* A ```text block right after a command block (nothing but blank lines between) is that block's
  expected output: its non-blank lines must be lines of the output, in order, `…` matching any text.
* The first block that fails ends its document's run: the later ones depend on it and are reported as
  not run.
* A block whose fence says ``tested-by=PATH`` (```` ```bash tested-by=tests/deploy/test_stack.py ````) is run by
  that test module instead (building an image or starting the whole stack twice does not fit the suite's
  time): the module must contain each of its commands verbatim (`commands`), which
  ``tests/docs/test_extractor.py`` checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from markdown_it import MarkdownIt

from churn_assets.settings import REPO_ROOT

DOCUMENTS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "CONTRIBUTING.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
]
"""The documentation whose examples run."""

RUNNERS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
"""Fence languages that are run, and how."""
OUTPUT_LANGUAGE = "text"

BLOCK_TIMEOUT_S = 1200.0
"""One block at most (the longest, `make run` training on a new batch: ~5 min on 2 busy cores)."""
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Server:
    """A server a block may start in the background, and how the runner knows it is up."""

    command: re.Pattern[str]
    port: Callable[[Mapping[str, str]], int]
    path: str
    ready: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200


def _env_port(name: str, default: int) -> Callable[[Mapping[str, str]], int]:
    return lambda env: int(env.get(name, default))


def _serving_ready(response: httpx.Response) -> bool:
    """Every worker of both endpoints serves the champion (not `degraded` while the second one starts)."""
    return response.status_code == 200 and response.json().get("status") == "ok"


SERVERS = [
    Server(
        re.compile(r"\bmake serve\b|-m serving\b"),
        _env_port("CHURN_SERVE_PORT", 8000),
        "/health",
        _serving_ready,
    ),
    Server(re.compile(r"\bmake ui\b|\bchurn ui\b"), _env_port("CHURN_UI_PORT", 3000), "/server_info"),
    Server(re.compile(r"\bmake mlflow-ui\b"), _env_port("CHURN_MLFLOW_UI_PORT", 5000), "/health"),
    Server(re.compile(r"\bmlflow models serve\b"), _env_port("MLFLOW_PORT", 5000), "/ping"),
]
# A command, then `&` after a space, then at most a comment (which may mention `&` itself).
_BACKGROUND = re.compile(r"^(?P<command>[^#]*?[^\s&])\s+&\s*(#.*)?$")


@dataclass(frozen=True)
class Block:
    """A fenced block of a document; `runs` says whether it is an example the runner executes."""

    path: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    section: int = 0  # line of the heading the block is under (0: none)
    expected: str | None = None  # the ```text block right after it: its expected output
    tested_by: str | None = None  # the test module that runs this block's commands, instead of this runner

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUNNERS and self.tested_by is None

    def commands(self) -> list[str]:
        """The shell commands of the block: continuations joined, blank and comment lines left out."""
        joined = re.sub(r"\s*\\\n\s*", " ", self.code)
        return [
            line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]

    def background_commands(self) -> list[str]:
        """The commands this block starts in the background (lines ending in `&`, continuations joined)."""
        if RUNNERS.get(self.language) != "bash":
            return []
        joined = re.sub(r"\\\n", " ", self.code)
        return [m.group("command") for line in joined.splitlines() if (m := _BACKGROUND.match(line))]


_MARKDOWN = MarkdownIt("commonmark")


def _fences_and_headings(text: str) -> tuple[list[tuple[int, int, str, str, str]], list[int]]:
    """Fences as (first line, line after the closing fence, language, info after it, code), 0-based;
    heading lines."""
    fences, headings = [], []
    for token in _MARKDOWN.parse(text):
        if token.type == "fence" and token.map:
            language, _, rest = token.info.strip().partition(" ")
            fences.append((token.map[0], token.map[1], language, rest.strip(), token.content))
        elif token.type == "heading_open" and token.map:
            headings.append(token.map[0])
    return fences, headings


def blocks(text: str, path: str) -> list[Block]:
    """Every fenced block of a Markdown text, with its section and, for a command, its expected output."""
    fences, headings = _fences_and_headings(text)
    lines = text.splitlines()
    found = []
    for index, (start, end, language, info, code) in enumerate(fences):
        expected = None
        if language in RUNNERS and index + 1 < len(fences):
            next_start, _, next_language, _, next_code = fences[index + 1]
            between = lines[end:next_start]
            if next_language == OUTPUT_LANGUAGE and not any(line.strip() for line in between):
                expected = next_code
        section = max((h + 1 for h in headings if h < start), default=0)
        tested_by = next(
            (w.removeprefix("tested-by=") for w in info.split() if w.startswith("tested-by=")), None
        )
        found.append(Block(path, start + 1, language, code, section, expected, tested_by))
    return found


def examples(document: Path) -> list[Block]:
    """The blocks of a document that run."""
    relative = document.resolve().relative_to(REPO_ROOT).as_posix()
    return [b for b in blocks(document.read_text(), relative) if b.runs]


def unlabelled_fences(text: str) -> list[int]:
    """1-based lines of fences without a language."""
    return [start + 1 for start, _, language, _, _ in _fences_and_headings(text)[0] if not language]


def output_matches(expected: str, output: str) -> str | None:
    """None when every non-blank line of `expected` is a line of `output`, in order (`…` matches any
    text); else the first expected line not found."""
    actual = iter(line.rstrip() for line in output.splitlines())
    for wanted in (line.rstrip() for line in expected.splitlines() if line.strip()):
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.split("…")))
        if not any(pattern.fullmatch(line) for line in actual):
            return wanted
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def document_env(home: Path, source_csv: Path, scratch: Path, marker: str) -> dict[str, str]:
    """What every block of a document runs with: the installation at `home`, the virtualenv's commands
    first on PATH (as when it is activated), the real data set, free ports for every server."""
    # MAKEFLAGS/MFLAGS/MAKELEVEL too: under `make test PYTEST_ARGS=...` they carry that command-line variable to
    # every nested make, where it would override the PYTEST_ARGS set below and run the suite inside itself.
    inherited = ("CHURN_", "MLFLOW_", "DAGSTER_", "PROMETHEUS_", "PYTEST_", "COV_", "COVERAGE_")
    make = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited) and k not in make}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "CHURN_HOME": str(home),
            "CHURN_SOURCE_CSV": str(source_csv),
            "CHURN_SERVE_PORT": str(free_port()),
            "CHURN_UI_PORT": str(free_port()),
            "CHURN_MLFLOW_UI_PORT": str(free_port()),
            "MLFLOW_PORT": str(free_port()),
            # The `make test...` targets collect the suite instead of running it inside itself (the docs
            # say so where they show them).
            "PYTEST_ARGS": "--collect-only -q --no-cov",
            "TMPDIR": str(scratch),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "CHURN_DOCS_RUN": marker,
        }
    )
    return env


@dataclass
class Outcome:
    block: Block
    status: str  # "passed", "failed" or "not run"
    detail: str = ""
    seconds: float = 0.0


@dataclass
class _Group:
    """Processes a block left running (its servers), stopped at the next heading."""

    pgid: int
    section: int
    log: Path


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(path: Path, chars: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


@dataclass
class DocumentRun:
    """Runs the examples of one document in order, in `scratch`, with `env` (`document_env`)."""

    env: dict[str, str]
    scratch: Path
    groups: list[_Group] = field(default_factory=list)

    def run(self, examples: list[Block]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            for block in examples:
                if outcomes and outcomes[-1].status != "passed":
                    first = next(o for o in outcomes if o.status == "failed")
                    outcomes.append(Outcome(block, "not run", f"not run: {first.block.id} failed first"))
                    continue
                self._stop_other_sections(block.section)
                outcomes.append(self._run(block))
        finally:
            self._stop_other_sections(None)
        return outcomes

    def _run(self, block: Block) -> Outcome:
        name = block.id.replace("/", "_").replace(":", "-")
        script = self.scratch / f"{name}.{'py' if RUNNERS[block.language] == 'python' else 'sh'}"
        script.write_text(block.code)
        log = self.scratch / f"{name}.log"
        command = (
            [sys.executable, str(script)]
            if RUNNERS[block.language] == "python"
            else ["bash", "-euo", "pipefail", str(script)]
        )
        started = time.monotonic()
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            code = process.wait(BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        if _alive(process.pid):
            self.groups.append(_Group(process.pid, block.section, log))
        seconds = time.monotonic() - started
        where = f"{block.id} ({block.language}, {script.name})"
        if code is None:
            return Outcome(
                block, "failed", f"{where} did not finish within {BLOCK_TIMEOUT_S:g} s:\n{_tail(log)}"
            )
        if code != 0:
            return Outcome(
                block,
                "failed",
                f"{where} exited with {code}:\n{block.code}\n--- output ---\n{_tail(log)}",
                seconds,
            )
        problem = self._wait_for_servers(block, process.pid)
        if problem is None and block.expected is not None:
            missing = output_matches(block.expected, log.read_text(errors="replace"))
            if missing is not None:
                problem = f"expected output line not found: {missing!r}"
        if problem is not None:
            return Outcome(block, "failed", f"{where}: {problem}\n--- output ---\n{_tail(log)}", seconds)
        return Outcome(block, "passed", seconds=time.monotonic() - started)

    def _wait_for_servers(self, block: Block, pgid: int) -> str | None:
        for command in block.background_commands():
            server = next((s for s in SERVERS if s.command.search(command)), None)
            if server is None:
                return f"starts {command!r} in the background: tests/docs/examples.py SERVERS must say how to wait for it"
            url = f"http://127.0.0.1:{server.port(self.env)}{server.path}"
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if not _alive(pgid):
                    return f"{command!r} exited before {url} answered"
                try:
                    if server.ready(httpx.get(url, timeout=5)):
                        break
                except (httpx.HTTPError, ValueError):  # not listening yet, or not JSON yet
                    pass
                if time.monotonic() > deadline:
                    return f"{url} was not ready within {READY_TIMEOUT_S:g} s of {command!r}"
                time.sleep(1)
        return None

    def _stop_other_sections(self, section: int | None) -> None:
        """Stop the servers started under another heading than `section` (None: all of them)."""
        stopping = [g for g in self.groups if g.section != section]
        self.groups = [g for g in self.groups if g.section == section]
        for group in stopping:
            _signal_group(group.pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(_alive(g.pgid) for g in stopping) and time.monotonic() < deadline:
            time.sleep(0.2)
        for group in stopping:
            _signal_group(group.pgid, signal.SIGKILL)
        if not self.groups:  # also what left the groups (a new session of its own), by its marker
            for pid in marked_processes(self.env["CHURN_DOCS_RUN"]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def marked_processes(marker: str) -> Iterator[int]:
    """Processes started by this run (they carry its CHURN_DOCS_RUN value in their environment)."""
    needle = f"CHURN_DOCS_RUN={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                yield int(entry.name)
        except OSError:
            continue


def new_marker() -> str:
    return uuid.uuid4().hex
