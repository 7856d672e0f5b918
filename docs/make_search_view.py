"""Make docs/search-view.png: a 32-rollout `paper` search in the HTML view, in a real browser.

The search runs on the statistical world of the tests (a scripted OpenAI-compatible server on
127.0.0.1 whose samples are right with probability 0.3), so it takes seconds and is the same
every time. The screenshot comes from Debian's Chromium driven by Playwright::

    apt-get install -y chromium && pip install -e ".[test]"
    python docs/make_search_view.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ holds the scripted server and the world

from playwright.sync_api import sync_playwright  # noqa: E402

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve  # noqa: E402
from langgraph_rstar.view import write_search_html  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.scripted_server import ScriptedServer  # noqa: E402
from tests.statistical_world import StatisticalWorld, world_question  # noqa: E402


def main() -> None:
    world = StatisticalWorld(p=0.3, seed=0)
    with ScriptedServer(world.respond) as server:
        llm = OpenAICompatibleLLM(server.base_url, "statistical-world", max_retries=0)
        config = RStarConfig.preset("paper")
        result = asyncio.run(asolve(world_question(7), target=llm, config=config))
    html = write_search_html(result.to_dict(), Path(tempfile.mkdtemp()) / "search-view.html")
    print(
        f"{html}: {len(result.tree)} nodes, answer {result.answer} ({result.selection}), "
        f"right answer {world.right_answer(7)}"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1050})
        page.goto(html.as_uri())
        page.click("#collapse-all")  # the root's children, then the way to the chosen node
        page.click("#show-chosen")
        chosen = page.locator("li.node.chosen").get_attribute("data-id")
        page.locator(f'[id="n-{chosen}"] > details > summary .snippet').click()
        page.locator(f'[id="n-{chosen}"] details.checks').evaluate("d => d.open = true")
        page.evaluate("window.scrollTo(0, 0)")
        png = ROOT / "docs" / "search-view.png"
        page.screenshot(path=str(png))
        browser.close()
    print(png)


if __name__ == "__main__":
    main()
