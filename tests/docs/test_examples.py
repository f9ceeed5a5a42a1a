"""Every shell and Python example of README.md, CONTRIBUTING.md and docs/*.md runs, on a real installation.

Each document runs on a copy of its own of the `materialized` installation (the whole graph built on the
real data), its blocks in document order, the first time one of its blocks is asked for: the tests can
run in any order, each document's blocks always run in theirs. The rules an example follows are in
`tests.docs.examples` and, for authors, in CONTRIBUTING.md (*Examples in the docs*).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from churn_assets.settings import REPO_ROOT
from tests.conftest import Installation, copy_installation
from tests.docs.examples import (
    DOCUMENTS,
    Block,
    DocumentRun,
    Outcome,
    blocks,
    document_env,
    examples,
    new_marker,
)

pytestmark = pytest.mark.e2e

EXAMPLES = [block for document in DOCUMENTS for block in examples(document)]


class Documents:
    """The outcomes of every document's examples, each document run once, when first asked for."""

    def __init__(self, installation: Installation, source_csv: Path, workdir: Path) -> None:
        self.installation, self.source_csv, self.workdir = installation, source_csv, workdir
        self.outcomes: dict[Block, Outcome] = {}
        self.attempted: set[str] = set()

    def outcome(self, block: Block) -> Outcome:
        if block.path not in self.attempted:
            self.attempted.add(block.path)
            self._run(block.path)
        return self.outcomes.get(block) or Outcome(
            block, "not run", f"not run: the run of {block.path} stopped before it (see its first failure)"
        )

    def _run(self, path: str) -> None:
        scratch = self.workdir / re.sub(r"\W", "_", path)
        scratch.mkdir()
        for copy in copy_installation(self.installation, scratch / "home"):
            env = document_env(copy.settings.home, self.source_csv, scratch, new_marker())
            document = [b for b in EXAMPLES if b.path == path]
            for outcome in DocumentRun(env, scratch).run(document):
                self.outcomes[outcome.block] = outcome


@pytest.fixture(scope="module")
def documents(
    materialized: Installation, real_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Documents:
    return Documents(materialized, real_csv, tmp_path_factory.mktemp("docs"))


# The first example of a document runs the whole document (the user guide trains a model: ~5 min of its
# ~11 on 2 busy cores), after the golden installation is built for the session.
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("block", EXAMPLES, ids=lambda block: block.id)
def test_example_runs(block: Block, documents: Documents) -> None:
    outcome = documents.outcome(block)
    if outcome.status != "passed":
        pytest.fail(outcome.detail, pytrace=False)


def test_the_architecture_diagram_is_the_asset_graph() -> None:
    """The first Mermaid diagram of docs/architecture.md: asset nodes `id["key"]` in one subgraph per group,
    and `a --> b` for every dependency (other shapes and dotted arrows are context, not assets)."""
    from churn_assets.definitions import defs

    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    diagram = next(b for b in blocks(text, "docs/architecture.md") if b.language == "mermaid").code
    keys, groups, group = {}, {}, None
    for line in diagram.splitlines():
        if m := re.fullmatch(r"\s*subgraph (\w+)", line):
            group = m.group(1)
        elif line.strip() == "end":
            group = None
        elif m := re.fullmatch(r'\s*(\w+)\["([^"]+)"\]', line):
            keys[m.group(1)] = m.group(2)
            groups[m.group(2)] = group
    edges = {(keys[a], keys[b]) for a, b in re.findall(r"^\s*(\w+) --> (\w+)\s*$", diagram, re.M)}

    graph = defs.resolve_asset_graph()
    assert groups == {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert edges == {
        (parent.to_user_string(), key.to_user_string())
        for key in graph.get_all_asset_keys()
        for parent in graph.get(key).parent_keys
    }


def test_the_settings_table_names_every_setting() -> None:
    """docs/user-guide.md's *Settings* table lists every environment variable of both settings classes."""
    from churn_assets.settings import Settings
    from serving.config import ServeSettings

    text = (REPO_ROOT / "docs" / "user-guide.md").read_text()
    table = text[text.index("## Settings") :]
    documented = set(re.findall(r"`(CHURN_[A-Z0-9_]+)`", table))
    fields = {f"CHURN_{name.upper()}" for cls in (Settings, ServeSettings) for name in cls.model_fields}
    assert documented == fields
