"""Render a search as one self-contained HTML page (inline CSS and JS, no network).

Safety: every string from a model (or a dataset) goes through Jinja's autoescaping, and the page's
Content-Security-Policy lets only its own nonce-tagged script run and forbids every fetch, so a
completion that says ``<script>`` or ``<img src=...>`` is shown as text and nothing else.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from langgraph_rstar.view.model import ACTION_LABELS, build_view

__all__ = ["render_index_html", "render_search_html", "write_records_html", "write_search_html"]


@lru_cache(maxsize=1)
def _env() -> Environment:
    # autoescape for every template, whatever its suffix: all of them are HTML.
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    env.globals["legend"] = [(f"a{i}", label) for i, label in enumerate(ACTION_LABELS.values(), 1)]
    return env


@lru_cache(maxsize=8)
def _asset(name: str) -> str:
    return (resources.files("langgraph_rstar.view") / "assets" / name).read_text("utf-8")


def render_search_html(search: Mapping[str, Any], *, title: str | None = None) -> str:
    """The HTML page of one search.

    Args:
        search: an ``RStarResult.to_dict()`` (with its ``tree``) or an rStar eval record.
        title: the page's heading (default "rStar search").

    Example:
        >>> from langgraph_rstar.view import render_search_html
        >>> page = render_search_html(result.to_dict())  # doctest: +SKIP
        >>> page.startswith("<!DOCTYPE html>")  # doctest: +SKIP
        True
    """
    view = build_view(search, title=title)
    template = _env().from_string(_asset("search.html.j2"))
    return template.render(
        v=view,
        css=Markup(_asset("view.css")),
        js=Markup(_asset("view.js")),
        nonce=secrets.token_urlsafe(16),
    )


def write_search_html(
    search: Mapping[str, Any], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Write :func:`render_search_html` to ``path`` (parent directories are created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_search_html(search, title=title), encoding="utf-8")
    return out


def render_index_html(rows: Iterable[Mapping[str, Any]], *, title: str) -> str:
    """A table of questions with links to their pages (see :func:`write_records_html`)."""
    rows = list(rows)
    scored = [r for r in rows if r.get("correct") is not None]
    template = _env().from_string(_asset("index.html.j2"))
    return template.render(
        title=title,
        rows=rows,
        scored=bool(scored),
        correct=sum(1 for r in scored if r["correct"] is True),
        css=Markup(_asset("view.css")),
    )


def _file_name(index: int, item_id: str) -> str:
    # Ids may be paths ("test/algebra/1.json"); the index keeps sanitized names apart.
    return f"{index:04d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', item_id)[:80]}.html"


def write_records_html(
    records: Iterable[Mapping[str, Any]], out_dir: str | os.PathLike[str], *, title: str
) -> Path:
    """One page per record that keeps its search tree, and ``index.html`` linking them.

    Records of methods without a tree (cot, sc) and error records are listed without a link.

    Returns:
        The index file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, rec in enumerate(records):
        item_id = str(rec.get("id"))
        tree = rec.get("tree")
        href = None
        if isinstance(tree, Mapping) and tree:
            href = _file_name(i, item_id)
            search = {**rec, "answer": rec.get("prediction")}
            write_search_html(search, out / href, title=f"{title} · {item_id}")
        rows.append(
            {
                "id": item_id,
                "question": rec.get("question") or "",
                "prediction": rec.get("prediction"),
                "gold": rec.get("gold"),
                "correct": rec.get("correct"),
                "confidence": rec.get("confidence"),
                "selection": rec.get("selection"),
                "nodes": len(tree) if isinstance(tree, Mapping) else 0,
                "error": rec.get("error"),
                "href": href,
            }
        )
    index = out / "index.html"
    index.write_text(render_index_html(rows, title=title), encoding="utf-8")
    return index
