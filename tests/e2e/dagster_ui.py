"""Page objects for the Dagster UI (1.13), driven by Playwright in Debian's chromium.

Playwright's own browser download needs the internet, so the tests launch the system's chromium by its
executable path (`.ci/run` installs it). Each reader opens one page, waits for its content with Playwright's
auto-waiting, saves a screenshot and raises AssertionError, naming what it expected, when the page does not
show it. The selectors are the UI's own structure (link hrefs, roles, ARIA labels, the URL of a selection);
the production build carries no data-testid attributes.

    with dagster_ui("http://127.0.0.1:3000", tmp_path) as ui:
        ui.dismiss_first_visit_dialog()
        assert ui.lineage_asset_keys() == expected_keys
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect, sync_playwright

VIEWPORT = {"width": 1600, "height": 1000}
# As root chromium refuses to start sandboxed; /dev/shm is small in containers; there is no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
TIMEOUT_MS = 30_000
# The "Join the Dagster community" dialog that Dagster opens a second after the first page load of a
# fresh instance on a localhost origin, until someone presses Skip or Submit (remembered by the instance).
NUX_TITLE = "Join the Dagster community"
NUX_WAIT_MS = 15_000
LOCAL_ORIGINS = ("http://127.0.0.1", "http://localhost")


def chromium_path() -> str:
    """Debian's chromium (`apt-get install chromium`), the browser every browser test drives."""
    for candidate in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError(
        "no chromium on this machine: the browser tests drive Debian's chromium by its path "
        "(`apt-get install chromium`, as .ci/run does); Playwright's own browser download is not used"
    )


@contextmanager
def dagster_ui(base_url: str, screenshot_dir: Path) -> Iterator[DagsterUI]:
    """A headless chromium on a fresh profile, 1600×1000, looking at the Dagster UI at `base_url`."""
    screenshot_dir = Path(screenshot_dir)
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, base_url=base_url.rstrip("/"))
            context.set_default_timeout(TIMEOUT_MS)
            yield DagsterUI(context.new_page(), screenshot_dir)
        finally:
            browser.close()


class DagsterUI:
    def __init__(self, page: Page, screenshot_dir: Path) -> None:
        self.page = page
        self.screenshot_dir = screenshot_dir

    # --- the first-visit dialog ---------------------------------------------------------------------

    def dismiss_first_visit_dialog(self) -> bool:
        """Skip the community dialog of a fresh instance; True if it was shown, False if there was none.

        Whether it shows is the instance's own answer (GraphQL `shouldShowNux`); Skip records it as seen
        there, so later pages, browsers and runs of the UI on the same CHURN_HOME never show it again. The
        readers below skip it too if it is still due (so call this first to see it: afterwards it is False).
        """
        if not self.page.url.startswith(("http://", "https://")):
            with self._expecting("the overview page", "goto"):
                self.page.goto("/overview")
        return self._skip_first_visit_dialog()

    def _skip_first_visit_dialog(self) -> bool:
        # The UI opens it only on a localhost origin, and only while the instance has not recorded it seen.
        if not self.page.url.startswith(LOCAL_ORIGINS) or not self._instance_shows_nux():
            return False
        page = self.page
        dialog = page.get_by_role("dialog").filter(has_text=NUX_TITLE)
        with self._expecting(f"the first-visit dialog {NUX_TITLE!r} that the instance announced", "nux"):
            with page.expect_response(lambda response: "op=SetNuxSeen" in response.url):
                dialog.get_by_role("button", name="Skip", exact=True).click(timeout=NUX_WAIT_MS)
            expect(dialog).to_have_count(0)
        if self._instance_shows_nux():
            raise AssertionError("the instance still wants to show its first-visit dialog after Skip")
        return True

    def _instance_shows_nux(self) -> bool:
        response = self.page.request.post("/graphql", data={"query": "query ShouldShowNux { shouldShowNux }"})
        body = response.json() if response.ok else {}
        return bool((body.get("data") or {}).get("shouldShowNux"))

    # --- the global asset lineage -------------------------------------------------------------------

    def lineage_asset_keys(self, screenshot: str = "lineage.png") -> set[str]:
        """The asset keys (`ml/champion_model`) of every node of the global lineage graph, groups expanded.

        The graph draws each asset as a node labelled with the last part of its key (middle-truncated when
        long), so the full key is read where the UI itself names it: selecting an asset in the lineage
        view's asset tree puts its key in the URL (`/asset-groups/ml%2Fchampion_model`). Every graph node
        must match exactly one of those keys and vice versa.
        """
        page = self.page
        self._goto("/asset-groups")
        graph = page.locator("[data-svg-viewport]").locator("svg")
        groups = graph.locator("foreignObject.group")
        nodes = graph.locator("foreignObject:not(.group)").filter(has_text=re.compile(r"\S"))
        tree = page.locator("[data-index]").filter(has=page.locator("button [title]"))
        assets_in_tree = tree.filter(has_not=page.locator("[aria-label=asset_group]"))
        with self._expecting("the global asset lineage graph, every group expanded", "lineage"):
            expect(graph.locator("foreignObject").first).to_be_attached()
            if groups.locator("[aria-label=unfold_more]").count():
                page.locator("[data-svg-viewport]").focus()
                page.keyboard.press("Alt+e")  # the graph's own "Expand all groups" (settings menu, ⌥E)
            expect(groups.locator("[aria-label=unfold_more]")).to_have_count(0)
        with self._expecting("the asset tree beside the lineage graph, every group open", "lineage"):
            self._open_every_tree_group(tree, assets_in_tree)
        with self._expecting("as many asset nodes in the lineage graph as assets in its tree", "lineage"):
            expect(assets_in_tree.first).to_be_visible()
            # A row the UI is still filling is titled "Loading…" (seen on a loaded machine): wait for every name.
            expect(assets_in_tree.locator("[title='Loading…']")).to_have_count(0)
            expect(nodes).to_have_count(assets_in_tree.count())
            labels = [_node_label(node) for node in nodes.all()]
        self._settle(graph)
        self.screenshot(screenshot)

        keys: dict[str, str] = {}
        names = [row.locator("[title]").first.get_attribute("title") or "" for row in assets_in_tree.all()]
        with self._expecting("each asset of the tree to put its key in the URL when selected", "lineage"):
            for name in names:
                before = page.url
                # A plain click waits for the graph to stop moving after each selection: 0.5 s an asset.
                assets_in_tree.locator(f"button:has([title={json.dumps(name)}])").first.dispatch_event(
                    "click"
                )
                page.wait_for_url(lambda url, before=before: url != before and "/asset-groups/" in url)
                keys[unquote(urlparse(page.url).path.removeprefix("/asset-groups/"))] = name

        unmatched = _match_labels(labels, keys)
        if unmatched or len(keys) != len(labels):
            raise AssertionError(
                f"the lineage graph's nodes {sorted(labels)} do not match the assets of its tree "
                f"{sorted(keys)} (unmatched nodes: {unmatched})"
            )
        return set(keys)

    def _open_every_tree_group(self, tree: Locator, assets_in_tree: Locator) -> None:
        """Open each closed group of the asset tree (its arrow toggles it; a click that hides rows is undone)."""
        groups = tree.filter(has=self.page.locator("[aria-label=asset_group]"))
        for name in [g.locator("[title]").first.get_attribute("title") for g in groups.all()]:
            arrow = groups.filter(has=self.page.locator(f"[title={json.dumps(name)}]")).locator(
                "button:has([aria-label=arrow_drop_down])"
            )
            shown = assets_in_tree.count()
            arrow.click()
            expect(assets_in_tree).not_to_have_count(shown)
            if assets_in_tree.count() < shown:  # it was open: open it again
                arrow.click()
                expect(assets_in_tree).to_have_count(shown)

    # --- automation ------------------------------------------------------------------------------------

    def sensor_states(self, screenshot: str = "automation.png") -> dict[str, bool]:
        """Every sensor on the Automation page, by name: True if its toggle is on (running)."""
        page = self.page
        self._goto("/automation")
        links = page.locator("a[href*='/sensors/']")
        rows = page.locator("[data-index]").filter(has=links)
        with self._expecting("sensors listed on the Automation page", "automation"):
            expect(rows.first).to_be_visible()
            states = {}
            for row in rows.all():
                href = row.locator("a[href*='/sensors/']").first.get_attribute("href") or ""
                name = href.rstrip("/").rsplit("/", 1)[-1]
                # A row's checkboxes: its selection box, then its running switch, drawn disabled and
                # unchecked until the sensor's state has loaded.
                switch = row.get_by_role("checkbox").nth(1)
                expect(switch).to_be_enabled()
                states[name] = switch.is_checked()
        self.screenshot(screenshot)
        return states

    # --- an asset's latest materialization ----------------------------------------------------------

    def latest_materialization_metadata(
        self, asset_key: str, screenshot: str | None = None
    ) -> dict[str, str]:
        """The metadata (label → text as shown) of the asset's latest materialization, on its Overview tab."""
        page = self.page
        self._goto(f"/assets/{quote(asset_key)}")
        header_cell = page.locator("thead td, thead th")
        table = (
            page.locator("table")
            .filter(has=header_cell.filter(has_text=re.compile(r"^\s*Key\s*$")))
            .filter(has=header_cell.filter(has_text=re.compile(r"^\s*Value\s*$")))
        )
        with self._expecting(f"a metadata table of the latest materialization of {asset_key}", "asset"):
            expect(table.locator("tbody > tr").first).to_be_visible()
            header = [text.strip() for text in table.locator("thead td, thead th").all_inner_texts()]
            key_at, value_at = header.index("Key"), header.index("Value")
            metadata = {}
            # Newer observations' entries, if the table merges any, are marked by their own icon.
            materialized = table.locator("tbody > tr").filter(
                has_not=page.locator("[aria-label=observation]")
            )
            for row in materialized.all():
                cells = [text.strip() for text in row.locator("> td").all_inner_texts()]
                metadata[cells[key_at]] = cells[value_at]
        self.screenshot(screenshot or f"{asset_key.rsplit('/', 1)[-1]}.png")
        return metadata

    # --- plumbing -------------------------------------------------------------------------------------

    def screenshot(self, name: str) -> Path:
        path = self.screenshot_dir / name
        self.page.screenshot(path=path)
        return path

    def _goto(self, path: str) -> None:
        with self._expecting(f"the page {path}", "goto"):
            self.page.goto(path)
        # A fresh instance's first-visit dialog would cover whatever the readers click next.
        self._skip_first_visit_dialog()

    def _settle(self, graph: Locator) -> None:
        """Let the graph's status spinners finish before a screenshot (a nicer picture; not a check)."""
        with suppress(AssertionError):
            expect(graph.get_by_role("progressbar")).to_have_count(0, timeout=10_000)

    @contextmanager
    def _expecting(self, what: str, shot: str) -> Iterator[None]:
        """Turn a Playwright time-out into an AssertionError naming `what`, with a screenshot of the page."""
        try:
            yield
        except (PlaywrightError, AssertionError) as error:
            failure = self.screenshot_dir / f"failed-{shot}.png"
            try:
                self.page.screenshot(path=failure)
            except PlaywrightError:
                failure = None
            raise AssertionError(
                f"the Dagster UI at {self.page.url} did not show {what} (screenshot: {failure}): {error}"
            ) from error


def _node_label(node: Locator) -> str:
    """A graph node's label: the full name in its tooltip attribute when drawn full size, else its text."""
    tooltip = node.locator("[data-tooltip]")
    if tooltip.count():
        return tooltip.first.get_attribute("data-tooltip") or ""
    return (node.text_content() or "").strip()


def _match_labels(labels: list[str], keys: dict[str, str]) -> list[str]:
    """Pair each graph label with one key by its last part ('candid…_regression' matches around the '…')."""
    free = dict(keys)
    unmatched = []
    for label in sorted(labels, key=lambda text: "…" in text):  # exact labels first
        prefix, _, suffix = label.partition("…")
        for key, name in free.items():
            if name == label or (
                "…" in label
                and name.startswith(prefix)
                and name.endswith(suffix)
                and len(name) >= len(prefix) + len(suffix)
            ):
                del free[key]
                break
        else:
            unmatched.append(label)
    return unmatched
