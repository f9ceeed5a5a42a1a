"""The CI workflows and the pre-commit hooks are valid, and call only what exists.

* Every .github/workflows/*.yml is a valid GitHub workflow and every .github/actions/*/action.yml a valid
  action, by check-jsonschema's vendored schemas (the same check as the pre-commit hooks; offline).
* .pre-commit-config.yaml is valid for pre-commit, has only local hooks (nothing fetched), each runs a
  tool installed in the project's environment and applies to at least one file of the repository.
* Every `make TARGET` the workflows, the actions and the hooks run is a target of the Makefile: renaming
  a target without them fails here, not on the next push.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from check_jsonschema import main as check_jsonschema
from click.testing import CliRunner
from pre_commit.clientlib import load_config

from churn_assets.settings import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((REPO_ROOT / ".github" / "actions").glob("*/action.yml"))
PRE_COMMIT = REPO_ROOT / ".pre-commit-config.yaml"

# `make` followed by its targets (words up to an option, a VAR=value or the end of the command).
MAKE_CALL = re.compile(r"(?<![\w./$-])make((?:[ \t]+[A-Za-z0-9_.-]+(?![\w.=-]))+)")
# A rule's targets: `a b: prerequisites` at the start of a line (not `:=`, not a recipe line).
MAKE_RULE = re.compile(r"^([A-Za-z0-9_./-]+(?:[ \t]+[A-Za-z0-9_./-]+)*)[ \t]*:(?![=:])", re.MULTILINE)
# Options of `uv run` that take a value, so the tool is the first word after them.
UV_RUN_VALUE_OPTIONS = {"--directory", "--project", "--python", "--with", "--group", "--extra", "--env-file"}


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


@pytest.mark.parametrize(
    ("schema", "files"),
    [("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", ACTIONS)],
    ids=["workflows", "actions"],
)
def test_github_files_are_valid_for_their_schema(schema: str, files: list[Path]) -> None:
    assert files, f"no file to check against {schema}"
    result = CliRunner().invoke(check_jsonschema, ["--builtin-schema", schema, *map(str, files)])
    assert result.exit_code == 0, result.output


def _run_commands(node: Any) -> Iterator[str]:
    """Every `run:` script of a workflow or a composite action."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                yield value
            else:
                yield from _run_commands(value)
    elif isinstance(node, list):
        for item in node:
            yield from _run_commands(item)


def _hooks() -> list[dict[str, Any]]:
    return [hook for repo in load_config(str(PRE_COMMIT))["repos"] for hook in repo["hooks"]]


def _make_targets_called() -> dict[str, set[str]]:
    """Each make target called, with the files that call it."""
    scripts = [
        (_relative(path), command)
        for path in [*WORKFLOWS, *ACTIONS]
        for command in _run_commands(yaml.safe_load(path.read_text()))
    ]
    scripts += [(f"{_relative(PRE_COMMIT)} ({hook['id']})", hook["entry"]) for hook in _hooks()]
    called: dict[str, set[str]] = {}
    for where, command in scripts:
        for match in MAKE_CALL.finditer(command):
            for target in match.group(1).split():
                called.setdefault(target, set()).add(where)
    return called


def test_every_make_target_called_by_ci_and_hooks_exists() -> None:
    defined = {
        target for rule in MAKE_RULE.findall((REPO_ROOT / "Makefile").read_text()) for target in rule.split()
    }
    called = _make_targets_called()
    assert {"lint", "types", "test-fast", "test", "run", "security"} <= called.keys()
    missing = {target: sorted(where) for target, where in called.items() if target not in defined}
    assert not missing, f"make targets called but not in the Makefile: {missing}"


def test_the_make_call_pattern_reads_targets_not_variables() -> None:
    command = 'make test PYTEST_ARGS="-p randomly" && make lint types; cmake x; $(MAKE) y'
    assert [m.group(1).split() for m in MAKE_CALL.finditer(command)] == [["test"], ["lint", "types"]]


def _tool(entry: str) -> str:
    """The program a hook's entry runs: past `env VAR=value` and `uv run [options]`."""
    words = shlex.split(entry)
    if words[0] == "env":
        words = words[1:]
    while "=" in words[0]:
        words = words[1:]
    if words[:2] != ["uv", "run"]:
        return words[0]
    rest = iter(words[2:])
    for word in rest:
        if word in UV_RUN_VALUE_OPTIONS:
            next(rest)
        elif not word.startswith("-"):
            return word
    raise AssertionError(f"no program after `uv run` in {entry!r}")


def test_pre_commit_hooks_are_local_and_run_installed_tools() -> None:
    config = load_config(str(PRE_COMMIT))
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "a hook repository would be fetched"
    scripts = Path(sys.executable).parent
    for hook in _hooks():
        # `language: system` (read back as `unsupported`, its name since pre-commit 4.4): the command runs as
        # written, pre-commit installs nothing for it.
        assert hook["language"] == "unsupported", hook["id"]
        tool = _tool(hook["entry"])
        assert shutil.which(tool, path=str(scripts)) or (tool == "make" and shutil.which("make")), (
            f"hook {hook['id']} runs {tool!r}, which is not installed in {scripts}"
        )
    assert {_tool(h["entry"]) for h in _hooks()} >= {"ruff", "sqlfluff", "mypy", "check-jsonschema"}


def test_the_entry_parser_finds_the_program() -> None:
    assert _tool("env A=:memory: uv run --frozen --directory dbt_project sqlfluff lint") == "sqlfluff"
    assert _tool("uv run --no-sync mypy") == "mypy"
    assert _tool("make lint") == "make"


def test_every_pre_commit_hook_applies_to_a_file_of_the_repository() -> None:
    """A `files` pattern that matches nothing silently turns its hook off."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for hook in _hooks():
        pattern = re.compile(hook["files"])
        assert any(pattern.search(name) for name in listed), (
            f"hook {hook['id']}: no file matches {hook['files']}"
        )
