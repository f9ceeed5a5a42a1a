"""The examples extractor and runner of tests/docs on small Markdown texts (no installation needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from churn_assets.settings import REPO_ROOT
from tests.docs import examples
from tests.docs.examples import (
    DOCUMENTS,
    Block,
    DocumentRun,
    Server,
    blocks,
    output_matches,
    unlabelled_fences,
)

SAMPLE = textwrap.dedent(
    """\
    # Title

    ```bash
    echo one
    ```

    ```text
    one
    ```

    ## Section

    1. A step:

       ```python
       print("in a list")
       ```

    ~~~sh
    echo tilde
    ~~~

    Not an output: prose between.

    ```text
    figure
    ```

    ````markdown
    ```bash
    not a block of its own
    ```
    ````

    ```yaml
    a: 1
    ```
    """
)


def test_blocks_are_found_with_language_line_section_and_expected_output() -> None:
    found = blocks(SAMPLE, "doc.md")
    assert [(b.line, b.language, b.runs) for b in found] == [
        (3, "bash", True),
        (7, "text", False),
        (15, "python", True),
        (19, "sh", True),
        (25, "text", False),
        (29, "markdown", False),
        (35, "yaml", False),
    ]
    bash, _, python, sh, *_ = found
    assert bash.code == "echo one\n" and bash.expected == "one\n" and bash.section == 1
    assert python.code == 'print("in a list")\n' and python.section == 11  # the list's indentation is removed
    assert sh.expected is None  # prose stands between it and the next text block
    assert bash.id == "doc.md:3"


def test_a_fence_without_a_language_is_reported() -> None:
    assert unlabelled_fences("# T\n\n```\nx\n```\n\n```bash\ny\n```\n") == [3]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_fence_of_the_documentation_has_a_language(document: Path) -> None:
    assert document.is_file(), f"{document} is missing"
    assert unlabelled_fences(document.read_text()) == [], (
        f"{document.name}: fences without a language (```bash/```python run; ```text for output and figures)"
    )


def test_a_block_tested_by_a_module_is_not_run_here_and_lists_its_commands() -> None:
    text = "# T\n\n```bash tested-by=tests/deploy/test_stack.py\n# start it\nmake stack \\\n  ARGS=1\n\nmake stack-down\n```\n"
    (block,) = blocks(text, "doc.md")
    assert block.tested_by == "tests/deploy/test_stack.py" and not block.runs
    assert block.commands() == ["make stack ARGS=1", "make stack-down"]


TESTED_ELSEWHERE = [
    b for document in DOCUMENTS for b in blocks(document.read_text(), document.name) if b.tested_by
]


@pytest.mark.parametrize("block", TESTED_ELSEWHERE, ids=lambda b: b.id)
def test_a_block_tested_elsewhere_is_run_verbatim_by_its_test_module(block: Block) -> None:
    """The module a block names runs each of its commands as written: a command changed in the doc and not in
    the test (or the other way round) fails here."""
    module = REPO_ROOT / block.tested_by
    assert module.is_file() and module.is_relative_to(REPO_ROOT / "tests"), f"{block.id}: no test {module}"
    source = module.read_text()
    missing = [command for command in block.commands() if command not in source]
    assert not missing, f"{block.id}: {block.tested_by} does not run {missing}"


def test_background_commands_are_lines_ending_in_an_ampersand() -> None:
    code = "make serve &   # the server (or without the &)\nfoo &&\nFOO=1 \\\n  mlflow models serve -m x &\ntrue && echo '&'\nmake lint\n"
    assert Block("d.md", 1, "bash", code).background_commands() == [
        "make serve",
        "FOO=1    mlflow models serve -m x",
    ]
    assert Block("d.md", 1, "python", "x = 1 &\n").background_commands() == []


def test_expected_output_lines_match_in_order_with_ellipsis() -> None:
    output = 'start\n{"a":0.123,"b":true}\nHTTP 422\n'
    assert output_matches('{"a":…,"b":true}\nHTTP 422\n', output) is None
    assert output_matches("HTTP 422\nstart\n", output) == "start"  # order matters
    assert output_matches("HTTP 42\n", output) == "HTTP 42"  # whole lines


def _run(tmp_path: Path, markdown: str, **env: str) -> list[examples.Outcome]:
    """Run a small document; afterwards no process it started is left."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    marker = examples.new_marker()
    environment = examples.document_env(tmp_path / "home", tmp_path / "data.csv", scratch, marker)
    outcomes = DocumentRun(environment | env, scratch).run(
        [b for b in blocks(textwrap.dedent(markdown), "doc.md") if b.runs]
    )
    assert list(examples.marked_processes(marker)) == []
    return outcomes


def test_blocks_run_in_order_and_the_first_failure_stops_the_document(tmp_path: Path) -> None:
    outcomes = _run(
        tmp_path,
        """\
        ```bash
        echo "$CHURN_HOME" > "$TMPDIR/home.txt"
        ```

        ```python
        import os
        from pathlib import Path

        assert Path(os.environ["TMPDIR"], "home.txt").read_text().strip() == os.environ["CHURN_HOME"]
        print("seen")
        ```

        ```text
        seen
        ```

        ```bash
        churn --no-such-flag
        ```

        ```bash
        echo never
        ```
        """,
    )
    assert [o.status for o in outcomes] == ["passed", "passed", "failed", "not run"]
    assert outcomes[2].detail.startswith("doc.md:17 (bash") and "exited with 2" in outcomes[2].detail
    assert "--no-such-flag" in outcomes[2].detail
    assert outcomes[3].detail == "not run: doc.md:17 failed first"


def test_an_output_that_differs_from_the_text_block_fails(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "```bash\necho actual\n```\n\n```text\nexpected\n```\n")[0]
    assert outcome.status == "failed" and "expected output line not found: 'expected'" in outcome.detail


def test_a_background_server_is_waited_for_then_stopped_at_the_next_heading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = examples.free_port()
    server = Server(examples.re.compile(r"http\.server"), lambda env: int(env["DOC_PORT"]), "/")
    monkeypatch.setattr(examples, "SERVERS", [server])
    outcomes = _run(
        tmp_path,
        """\
        ## One

        ```bash
        python -m http.server "$DOC_PORT" --bind 127.0.0.1 &   # a server
        ```

        ```bash
        curl -sf "localhost:$DOC_PORT/" > /dev/null
        ```

        ## Two

        ```bash
        if curl -s "localhost:$DOC_PORT/"; then exit 1; fi
        ```
        """,
        DOC_PORT=str(port),
    )
    assert [o.status for o in outcomes] == ["passed", "passed", "passed"], [o.detail for o in outcomes]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_an_unknown_background_command_fails_and_is_stopped(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "```bash\nsleep 300 &\n```\n")[0]
    assert outcome.status == "failed" and "SERVERS must say how to wait for it" in outcome.detail


def test_a_nested_make_gets_the_documents_pytest_args_not_the_outer_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `make test PYTEST_ARGS=...`, MAKEFLAGS would carry that override into the docs' own `make test`,
    which would then run the whole suite inside itself instead of collecting."""
    monkeypatch.setenv("MAKEFLAGS", "w -- PYTEST_ARGS=--randomly-seed=1")
    monkeypatch.setenv("MAKELEVEL", "1")
    environment = examples.document_env(tmp_path / "home", tmp_path / "data.csv", tmp_path, "m")
    assert not {"MAKEFLAGS", "MAKELEVEL"} & set(environment)
    assert "--collect-only" in environment["PYTEST_ARGS"]
