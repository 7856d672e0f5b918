"""Terminal views: a live progress display for one search, and the tree as a rich Tree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.tree import Tree

from langgraph_rstar.config import RStarConfig
from langgraph_rstar.terminal import markup_safe


class SolveProgress:
    """Shows rollouts done/total, expansions, the answers found so far, then the discriminator.

    The discriminator sends all its masked prefixes at once and only reports when they are all
    back, which can take a while on a CPU: its phase shows up (with a spinner and the elapsed
    time) as soon as it starts, so the view never looks frozen.
    """

    def __init__(self, console: Console, config: RStarConfig, *, enabled: bool = True):
        self.enabled = enabled
        self.config = config
        self.progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self.search = self.progress.add_task("rollouts", total=config.num_rollouts, info="")
        self.verify: TaskID | None = None
        self.expansions = 0
        self.answers: dict[str, int] = {}

    def __enter__(self) -> SolveProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def on_event(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        if kind == "rstar.node_expanded":
            self.expansions += 1
        elif kind == "rstar.rollout_finished":
            if event.get("answer") is not None:
                self.answers[event["answer"]] = self.answers.get(event["answer"], 0) + 1
            self.progress.advance(self.search)
        elif kind == "rstar.verification_started":
            self.verify = self.progress.add_task(
                "verify",
                total=event["candidates"],
                info=f"discriminator: {event['prompts']} masked completions of "
                f"{event['candidates']} candidates in flight",
            )
        elif kind == "rstar.candidate_verified":
            if self.verify is None:
                self.verify = self.progress.add_task("verify", total=None, info="")
            self.progress.advance(self.verify)
            agree = f"{event['agreements']}/{event['masks']} agree"
            self.progress.update(self.verify, info=f"{markup_safe(event['answer'])}: {agree}")
        elif kind == "rstar.budget_exhausted" and self.enabled:
            self.progress.console.print(
                f"[yellow]budget {event['limit']} reached[/yellow] after {event['requests']} "
                f"requests, {event['generated_tokens']} generated tokens, {event['seconds']:.1f} s:"
                " answering from what the search has"
            )
        elif kind == "rstar.discriminator_failed" and self.enabled:
            self.progress.console.print(
                f"[yellow]discriminator failed[/yellow] ({markup_safe(event['error'])}): "
                "using the generator's majority vote"
            )
        elif kind == "rstar.final_answer":
            if self.verify is not None:
                self.progress.update(self.verify, total=self.progress.tasks[self.verify].completed)
        top = ", ".join(
            f"{markup_safe(a)}×{n}"
            for a, n in sorted(self.answers.items(), key=lambda x: -x[1])[:3]
        )
        self.progress.update(self.search, info=f"{self.expansions} actions; answers: {top or '-'}")


def render_tree(nodes: Mapping[str, Mapping[str, Any]], *, width: int = 90) -> Tree:
    """The search tree with each node's action, visits, mean reward and answer."""

    def label(node: Mapping[str, Any]) -> str:
        text = node.get("subquestion") or node.get("text") or ""
        text = " ".join(text.split())
        if len(text) > width:
            text = text[: width - 1] + "…"
        stats = f"N={node.get('N', 0)} Q/N={node.get('Q', 0) / max(1, node.get('N', 0)):.2f}"
        answer = (
            f" [green]→ {markup_safe(node['answer'])}[/green]"
            if node.get("answer") is not None
            else ""
        )
        value = f" v={node['value']:.2f}" if node.get("value") is not None else ""
        return (
            f"[cyan]{markup_safe(node['id'])}[/cyan] [magenta]{markup_safe(node['kind'])}"
            f"[/magenta] ({stats}{value}){answer} [dim]{markup_safe(text)}[/dim]"
        )

    children: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        if node.get("parent") is not None:
            children.setdefault(node["parent"], []).append(node_id)
    root = Tree(label(nodes["0"]))

    def add(branch: Tree, node_id: str) -> None:
        for kid in children.get(node_id, []):
            add(branch.add(label(nodes[kid])), kid)

    add(root, "0")
    return root
