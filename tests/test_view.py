"""The HTML search view: what it shows, that model text stays text, and that it works in a real
browser (Debian's Chromium driven by Playwright, offline, from ``file://``).

The browser tests need ``/usr/bin/chromium``; they skip without it unless
``RSTAR_REQUIRE_BROWSER=1`` (CI sets it), in which case a missing browser fails them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
from langgraph_rstar.cli import main as cli_main
from langgraph_rstar.search import collect_candidates
from langgraph_rstar.view import build_view, render_search_html, write_records_html
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import QUESTIONS, rstar_responder
from tests.scripted_server import ScriptedServer
from tests.statistical_world import StatisticalWorld, world_question

Q_TOM, (TOM, _) = next(iter(QUESTIONS.items()))
PAYLOAD = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def cli(argv: list[str]) -> int:
    """``rstar ...`` in a worker thread: Playwright's sync API holds this thread's event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(cli_main, argv).result()


def injecting_responder(prompt: str, params: dict) -> str:
    """rStar's scripted answers with markup in every step a model writes."""
    text = rstar_responder(prompt, params)
    return text.replace("We work it out.", f"We work it out {PAYLOAD}.")


# ----------------------------------------------------------------------- the view's model


async def test_view_marks_the_chosen_node_the_candidates_and_the_verdicts(scripted):
    llm = OpenAICompatibleLLM(scripted.base_url, "m", max_retries=0)
    cfg = RStarConfig.preset("fast", num_rollouts=4, max_depth=3)
    result = await asolve(Q_TOM, target=llm, config=cfg)
    view = build_view(result.to_dict())
    assert view.answer == result.answer == TOM
    # the chosen node ends the trajectory the answer came with
    chosen = next(c for c in result.candidates if c["node_id"] == view.chosen_node)
    assert chosen["steps"] == result.trajectory and chosen["answer"] == TOM
    flat = {}
    stack = [view.root]
    while stack:
        node = stack.pop()
        flat[node.id] = node
        stack.extend(node.children)
    assert set(flat) == set(result.tree)  # every node once
    assert [n.id for n in flat.values() if n.chosen] == [view.chosen_node]
    on_path = {n.id for n in flat.values() if n.on_chosen_path}
    assert on_path == {
        ".".join(view.chosen_node.split(".")[:k])
        for k in range(1, 1 + len(view.chosen_node.split(".")))
    }
    # every check of the discriminator shows on its candidate, with the same counts
    checks = result.verification["checks"]
    assert checks and len(view.verdicts) == len(checks)
    for check in checks:
        verdict = flat[check["node_id"]].verdict
        assert verdict is not None and verdict.agreements == check["agreements"]
        assert verdict.consistent == check["consistent"] and verdict.masks == len(check["answers"])
        assert verdict.completions == check["completions"]
    # visits and Q/N as the tree holds them
    for node_id, node in result.tree.items():
        assert flat[node_id].visits == node["N"]
        if node["N"]:
            assert flat[node_id].q_over_n == pytest.approx(node["Q"] / node["N"])
    answers = {a: (n, ok) for a, n, ok in view.answers}
    assert sum(n for n, _ in answers.values()) == len(result.candidates)


def test_a_result_without_a_tree_is_refused():
    with pytest.raises(ValueError, match="no search tree"):
        build_view({"question": "q", "answer": "1"})


async def test_model_text_is_escaped_in_the_page():
    with ScriptedServer(injecting_responder) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        cfg = RStarConfig.preset("fast", num_rollouts=3, max_depth=3)
        result = await asolve(Q_TOM, target=llm, config=cfg)
    assert any(PAYLOAD in str(n.get("text")) for n in result.tree.values())
    page = render_search_html(result.to_dict())
    assert PAYLOAD not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "<img src=x" not in page
    # one script only: the page's own, tagged with the nonce its CSP allows
    assert len(re.findall(r"<script\b", page)) == 1
    nonce = re.search(r"script-src 'nonce-([^']+)'", page).group(1)
    assert f'<script nonce="{nonce}">' in page


# ----------------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("RSTAR_REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"RSTAR_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)"
            )
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser tab that records console errors, page errors and every request."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())

    def visible_ids(self) -> set[str]:
        return set(
            self.page.eval_on_selector_all(
                "li.node", "els => els.filter(e => e.checkVisibility()).map(e => e.dataset.id)"
            )
        )

    def offline(self) -> bool:
        return all(url.startswith("file://") for url in self.requests)


@pytest.fixture(scope="module")
def paper_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """A 32-rollout `paper` search on the statistical world, written by `rstar solve --html`."""
    out = tmp_path_factory.mktemp("view")
    world = StatisticalWorld(p=0.3, seed=0)
    html = out / "search.html"
    with ScriptedServer(world.respond) as server:
        argv = ["solve", world_question(7), "--base-url", server.base_url, "--model", "w"]
        argv += ["--preset", "paper", "--json", "--full", "--html", str(html)]
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert cli(argv) == 0
    return json.loads(buffer.getvalue()), html


def test_the_paper_search_page_loads_offline_and_shows_the_whole_tree(browser, paper_search):
    result, html = paper_search
    tab = Page(browser, html)
    page = tab.page
    assert tab.errors == [] and tab.offline()
    assert page.locator("#final-answer").inner_text() == result["answer"]
    assert page.locator("#question").inner_text() == result["question"]
    assert page.locator("li.node").count() == len(result["tree"])
    candidates = collect_candidates(result["tree"])
    assert page.locator("#candidates tbody tr").count() == len(candidates)
    chosen = page.locator("li.node.chosen")
    assert chosen.count() == 1
    chosen_id = chosen.get_attribute("data-id")
    chosen_cand = next(c for c in candidates if c["node_id"] == chosen_id)
    assert chosen_cand["steps"] == result["trajectory"]
    # verdict badges: one per checked candidate (and its copies), counts as stored
    for check in result["verification"]["checks"]:
        badge = page.locator(
            f'[id="n-{check["node_id"]}"] > details > summary .badge.ok, '
            f'[id="n-{check["node_id"]}"] > details > summary .badge.bad'
        )
        assert badge.inner_text().endswith(f"{check['agreements']}/{len(check['answers'])}")
    # visits and Q/N in each summary row
    root = result["tree"]["0"]
    summary = page.locator('[id="n-0"] > details > summary .stats').inner_text()
    assert summary == f"N={root['N']} · Q/N={root['Q'] / root['N']:.2f}"


def test_the_page_controls_filter_fold_and_reveal(browser, paper_search):
    result, html = paper_search
    tree = result["tree"]
    tab = Page(browser, html)
    page = tab.page
    chosen_id = page.locator("li.node.chosen").get_attribute("data-id")

    # an answer chip highlights that answer's nodes and hides everything off their paths
    answer = page.locator("#answers .chip").nth(1).get_attribute("data-answer")
    page.locator("#answers .chip").nth(1).click()
    having = {i for i, n in tree.items() if n.get("answer") == answer}
    assert (
        set(page.eval_on_selector_all("li.node.hit", "els => els.map(e => e.dataset.id)")) == having
    )
    keep = {".".join(i.split(".")[:k]) for i in having for k in range(1, len(i.split(".")) + 1)}
    assert tab.visible_ids() == keep
    assert page.locator("#match-count").inner_text() == f"{len(having)} matching node" + (
        "" if len(having) == 1 else "s"
    )
    page.locator("#answers .chip").nth(1).click()  # again: off
    assert len(tab.visible_ids()) > len(keep)

    # free-text filter on a node id
    page.fill("#filter", chosen_id)
    assert chosen_id in tab.visible_ids()
    assert page.locator(f'[id="n-{chosen_id}"]').get_attribute("class").count("hit") == 1
    page.fill("#filter", "")

    # collapse all, then "show chosen path" unfolds exactly the way to the chosen node
    page.click("#collapse-all")
    assert page.locator("li.node > details[open]").count() == 1
    assert chosen_id not in tab.visible_ids()
    page.click("#show-chosen")
    assert chosen_id in tab.visible_ids()
    assert page.locator(f'[id="n-{chosen_id}"]').is_visible()

    # a click on a node's text shows its full text; the summary stays one line
    body = page.locator(f'[id="n-{chosen_id}"] > details > .body')
    assert not body.is_visible()
    page.locator(f'[id="n-{chosen_id}"] > details > summary .snippet').click()
    assert body.is_visible()
    assert tree[chosen_id]["text"].split("\n")[0].strip() in body.inner_text()

    # visited only: nodes no rollout went through disappear (the chosen path stays)
    page.click("#expand-all")
    page.check("#only-visited")
    visible = tab.visible_ids()
    assert all(tree[i]["N"] > 0 or i == chosen_id or chosen_id.startswith(i + ".") for i in visible)
    assert any(n["N"] == 0 for n in tree.values())
    page.uncheck("#only-visited")
    assert tab.visible_ids() == set(tree)
    assert tab.errors == []


def test_model_markup_stays_inert_in_the_browser(browser, tmp_path, capsys):
    html = tmp_path / "inject.html"
    with ScriptedServer(injecting_responder) as server:
        argv = ["solve", Q_TOM, "--base-url", server.base_url, "--model", "m", "--quiet"]
        assert cli([*argv, "--rollouts", "3", "--html", str(html)]) == 0
    tab = Page(browser, html)
    tab.page.click("#expand-all")
    tab.page.check("#all-text")
    assert tab.page.evaluate("window.__pwned") is None
    assert tab.page.locator("img").count() == 0
    assert tab.page.get_by_text(PAYLOAD).count() > 0  # shown as the text it is
    assert tab.errors == [] and tab.offline()


def test_report_writes_one_page_per_question_of_an_eval_run(browser, tmp_path, scripted, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"q/{i}", "question": q, "answer": a}) + "\n"
            for i, (q, (a, _)) in enumerate(QUESTIONS.items())
        )
    )
    runs = {}
    for method in ("rstar", "cot"):
        runs[method] = tmp_path / method
        argv = ["eval", "--dataset", "gsm8k", "--data", str(data), "--method", method]
        argv += ["--out", str(runs[method]), "--base-url", scripted.base_url, "--model", "m"]
        assert cli([*argv, "--rollouts", "2", "--quiet"]) == 0
    records = [
        json.loads(line) for line in (runs["rstar"] / "results.jsonl").read_text().splitlines()
    ]
    assert all(r["tree"]["0"]["text"] == r["question"] for r in records)
    assert all(r["verification"]["reason"] for r in records)

    out = tmp_path / "html"
    assert cli(["report", str(runs["rstar"]), str(runs["cot"]), "--html", str(out)]) == 0
    assert "search views:" in capsys.readouterr().out
    pages = sorted((out / "rstar").glob("*.html"))
    names = [p.name for p in pages]
    assert names[-1] == "index.html" and len(names) == 1 + len(QUESTIONS)
    assert {n[5:] for n in names[:-1]} == {"q_0.html", "q_1.html", "q_2.html"}  # ids "q/i"
    cot_index = (out / "cot" / "index.html").read_text()
    assert "no tree" in cot_index and 'href="0000' not in cot_index

    tab = Page(browser, out / "rstar" / "index.html")
    assert tab.page.locator("#questions tbody tr").count() == len(QUESTIONS)
    tab.page.locator("#questions a").first.click()
    tab.page.wait_for_selector("#tree")
    assert tab.page.locator("#question").inner_text() == records[0]["question"]
    assert tab.page.locator("li.node").count() == len(records[0]["tree"])
    assert tab.page.locator("#final-answer").inner_text() == records[0]["prediction"]
    assert tab.errors == [] and tab.offline()


def test_records_without_trees_get_an_index_without_links(tmp_path):
    index = write_records_html(
        [{"id": "a", "question": "<b>q</b>", "prediction": "1", "gold": "1", "correct": True}],
        tmp_path,
        title="run",
    )
    text = index.read_text()
    assert "&lt;b&gt;q&lt;/b&gt;" in text and "<a href" not in text


class BreaksAfter(ScriptedServer):
    """Answers normally for ``ok`` requests, then sends replies without choices."""

    ok = 6

    def _handle(self, path, body):
        if len(self.posts) >= self.ok:
            self.malformed_next()
        return super()._handle(path, body)


def test_a_failed_solve_still_writes_the_partial_search(tmp_path, capsys):
    html = tmp_path / "partial.html"
    with BreaksAfter(rstar_responder) as server:
        argv = ["solve", Q_TOM, "--base-url", server.base_url, "--model", "m", "--json"]
        code = cli([*argv, "--rollouts", "4", "--html", str(html)])
    failure = json.loads(capsys.readouterr().out)
    assert code == 2 and failure["type"] == "run_failed"
    page = html.read_text()
    assert Q_TOM in page and page.count('class="node') > 1  # the tree so far, to look at
