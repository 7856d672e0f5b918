"""An HTML view of a search: the tree with every node's action, answer, visits and Q/N, the
terminal and chosen nodes, and the discriminator's verdicts, in one self-contained page.

Example::

    from langgraph_rstar import solve
    from langgraph_rstar.view import write_search_html

    result = solve("What is 17 * 23?", target=llm)
    write_search_html(result.to_dict(), "search.html")   # open it in any browser, offline

``rstar solve --html FILE`` writes the same page; ``rstar report RUN_DIR --html DIR`` writes one per
question of an rStar eval run plus an index.
"""

from langgraph_rstar.view.html import (
    render_index_html,
    render_search_html,
    write_records_html,
    write_search_html,
)
from langgraph_rstar.view.model import NodeView, SearchView, build_view

__all__ = [
    "NodeView",
    "SearchView",
    "build_view",
    "render_index_html",
    "render_search_html",
    "write_records_html",
    "write_search_html",
]
