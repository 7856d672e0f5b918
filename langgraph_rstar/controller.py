"""The barrier-free controller: rollouts resume as soon as the expansion they wait for returns.

A LangGraph superstep ends only when all of its tasks have returned, so a controller that sends
a wave of actions and waits for the next superstep makes every rollout wait for the slowest
action of the wave. Here the whole search is one graph node (``search``) that keeps its
actions in flight as LangGraph tasks (``langgraph.func.task``, one per action taken, named after
the action) and calls :func:`~langgraph_rstar.search.advance` again each time one returns:

    dispatch the expansions advance() asks for -> wait for the FIRST completed action(s)
    -> merge their children into the tree -> advance() -> dispatch -> ...

Each task runs the compiled ``expand`` graph (:func:`~langgraph_rstar.graph.create_expand_graph`),
whose nodes are the five actions; its result is checkpointed the moment it returns. The budget
(``max_requests``, ``max_generated_tokens``, ``max_seconds``) is checked before every dispatch:
once it is spent nothing new is sent, the actions in flight are merged, and the search ends.

**Resume.** After a crash LangGraph re-runs the ``search`` node; a task whose result was
stored returns it at once instead of calling the model. Tasks are matched to stored results by
the order of the calls, so the replay must make the same calls in the same order, i.e. take
completions in the order the first run took them. That order is timing-dependent, so it is
recorded: before merging a batch of completions the controller passes their ids (and the
seconds spent, which ``max_seconds`` compares) through a tiny ``controller`` task that returns
its input. On the first run it returns what it was given; on a replay it returns the stored
batch, which the controller then takes (those actions finished in the first run, so their
results are stored too). A crashed run thus re-sends only the actions that had not returned.
Without a checkpointer nothing is replayed and nothing is recorded.

**Determinism.** With one rollout in flight the calls, the tree and the random choices are
those of the sequential loop (completions of one expansion are merged in any order, which
does not change the tree). With K > 1 the order in which rollouts resume follows the
completion order, which depends on timing: two runs can grow different (equally valid)
trees. A resumed run follows its recorded order, so it finishes the tree it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.constants import CONF, CONFIG_KEY_CHECKPOINTER
from langgraph.func import task
from langgraph.pregel import Pregel
from typing_extensions import TypedDict

from langgraph_rstar import events
from langgraph_rstar.search import (
    ACTION_CODES,
    ACTIONS,
    Rollout,
    SearchSettings,
    Spent,
    Step,
    TreeNode,
    advance,
    merge_nodes,
    new_node,
    path_context,
)

Key = tuple[str, str]  # (node id, action)
USAGE_KEYS = ("requests", "prompt_tokens", "completion_tokens")


class ActionRequest(TypedDict):
    """What one action gets: the action, its node's path text, and the run's config."""

    action: str
    context: dict[str, Any]
    config: dict[str, Any]


class ActionOutput(TypedDict):
    """An action's result (what its ``updates`` stream entry and checkpoint hold)."""

    node_id: str
    action: str
    nodes: dict[str, dict[str, Any]]  # the new children, compact (see `compact_nodes`)
    usage: list[int]  # [requests, prompt_tokens, completion_tokens]


PARTIAL_ATTR = "rstar_partial"  # set on an exception that ended a search: what it had


def partial_of(exc: BaseException) -> dict[str, Any] | None:
    """The tree and usage a failed search had (``{"nodes", "usage"}``), if ``exc`` carries it."""
    seen: BaseException | None = exc
    while seen is not None:
        partial = getattr(seen, PARTIAL_ATTR, None)
        if isinstance(partial, dict):
            return partial
        seen = seen.__cause__ or seen.__context__
    return None


def is_durable(config: RunnableConfig) -> bool:
    """Whether the run that ``config`` belongs to has a checkpointer (and so can be resumed)."""
    return (config.get(CONF) or {}).get(CONFIG_KEY_CHECKPOINTER) is not None


def _subgraph_options(config: RunnableConfig) -> dict[str, Any]:
    # The task's result is what a resume needs; the expand graph's own checkpoints would store
    # it a second time (with its request). "exit": a nested graph then saves nothing unless it
    # fails. (Passed only with a checkpointer: without one LangGraph warns that it is moot.)
    return {"durability": "exit"} if is_durable(config) else {}


class _ActionTasks:
    """One LangGraph task per action, named after it, that runs the ``expand`` graph; a sync
    twin of each for ``graph.invoke``/``graph.stream`` (LangGraph's sync runner calls a task's
    function in a worker thread and cannot run a coroutine)."""

    def __init__(self, expand: Pregel) -> None:
        # (Any: langgraph types a task by its function, which takes an injected config too)
        self.tasks: dict[str, Any] = {}
        self.sync_tasks: dict[str, Any] = {}
        for action in ACTIONS:

            async def arun(request: ActionRequest, config: RunnableConfig) -> ActionOutput:
                return await expand.ainvoke(request, config, **_subgraph_options(config))

            def run(request: ActionRequest, config: RunnableConfig) -> ActionOutput:
                return expand.invoke(request, config, **_subgraph_options(config))

            arun.__name__ = run.__name__ = action
            self.tasks[action] = task(name=action)(cast(Any, arun))
            self.sync_tasks[action] = task(name=action)(cast(Any, run))


_TASKS: weakref.WeakKeyDictionary[Pregel, _ActionTasks] = weakref.WeakKeyDictionary()


def _tasks_for(expand: Pregel) -> _ActionTasks:
    tasks = _TASKS.get(expand)
    if tasks is None:
        tasks = _TASKS[expand] = _ActionTasks(expand)
    return tasks


# ------------------------------------------------------------------ compact task results
# An action's result is checkpointed as it returns, and the final tree is written once more at
# the end of the search: stored in full, a search would keep two copies of every node. Task
# results therefore leave out what `new_node` fills in anyway and the text they repeat.

_DERIVED = "~"  # which field a compact record left out because it repeats another


def compact_nodes(nodes: Mapping[str, TreeNode]) -> dict[str, dict[str, Any]]:
    """Drop default fields of new child records, and `steps`/`text` when one repeats the other.

    Example:
        >>> from langgraph_rstar.search import new_node
        >>> rec = new_node("0.s0", "0", 1, "one_step", "a1_one_step", text="x", steps=["x"])
        >>> small = compact_nodes({"0.s0": rec})["0.s0"]
        >>> small
        {'id': '0.s0', 'text': 'x', '~': 'steps'}
        >>> expand_nodes(compact_nodes({"0.s0": rec}))["0.s0"] == rec
        True
    """
    out: dict[str, dict[str, Any]] = {}
    for key, node in nodes.items():
        rec: Mapping[str, Any] = node
        if "id" not in rec:  # a partial update (the parent's children entry)
            out[key] = dict(rec)
            continue
        default: Mapping[str, Any] = new_node(
            rec["id"], rec["parent"], rec["depth"], rec["kind"], rec["action"]
        )
        implied = _implied_by_id(rec["id"])  # the id says where the node is and what made it
        small = {k: rec[k] for k in _BASE if k == "id" or implied.get(k, _MISSING) != rec[k]}
        small.update(
            {
                k: v
                for k, v in rec.items()
                if k not in _BASE and (k not in default or default[k] != v)
            }
        )
        steps, text = rec.get("steps"), rec.get("text")
        if steps and steps == [text]:
            del small["steps"]
            small[_DERIVED] = "steps"
        elif steps and text == " ".join(steps):
            del small["text"]
            small[_DERIVED] = "text"
        out[key] = small
    return out


def expand_nodes(nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, TreeNode]:
    """The records :func:`compact_nodes` was given."""
    out: dict[str, TreeNode] = {}
    for key, small in nodes.items():
        if "id" not in small:
            out[key] = dict(small)  # type: ignore[assignment]
            continue
        base = {**_implied_by_id(small["id"]), **{k: small[k] for k in _BASE if k in small}}
        fields = {k: v for k, v in small.items() if k not in _BASE and k != _DERIVED}
        derived = small.get(_DERIVED)
        if derived == "steps":
            fields["steps"] = [small["text"]]
        elif derived == "text":
            fields["text"] = " ".join(small["steps"])
        out[key] = new_node(
            base["id"], base["parent"], base["depth"], base["kind"], base["action"], **fields
        )
    return out


_BASE = ("id", "parent", "depth", "kind", "action")
_MISSING = object()
_ACTION_OF_CODE = {code: action for action, code in ACTION_CODES.items()}
_KIND_OF_ACTION = {
    "a1_one_step": "one_step",
    "a2_remaining_steps": "direct_answer",
    "a3_subquestion": "subquestion",
    "a4_reanswer_subquestion": "re_subanswer",
    "a5_rephrase_question": "rephrased",
}


def _implied_by_id(node_id: str) -> dict[str, Any]:
    """What a child id such as ``0.s1.q0`` implies: parent, depth, action and its node kind."""
    parent, dot, last = node_id.rpartition(".")
    action = _ACTION_OF_CODE.get(last[:1])
    if not dot or action is None:
        return {"id": node_id}
    return {
        "id": node_id,
        "parent": parent,
        "depth": node_id.count("."),
        "action": action,
        "kind": _KIND_OF_ACTION[action],
    }


async def _record(entry: dict[str, Any]) -> dict[str, Any]:
    """What the controller takes next (stored, so that a replay takes the same)."""
    return entry


def _record_sync(entry: dict[str, Any]) -> dict[str, Any]:
    return entry


_take: Any = task(name="controller")(cast(Any, _record))
_take_sync: Any = task(name="controller")(cast(Any, _record_sync))


def _add_usage(total: dict[str, int], more: Mapping[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


class Controller:
    """Runs one search to the end; see the module docstring.

    Args:
        nodes, rollouts, config: the search's state (the tree, the rollouts so far, the run's
            settings as a dict).
        expand: the compiled ``expand`` graph each action runs through.
        write: the node's stream writer (progress events).
        started_at: wall clock (``time.time()``) when the search started (``max_seconds``).
        durable: the run has a checkpointer: record the completion order for a resume.
        sync: the search runs for LangGraph's sync API (``invoke``/``stream``).
    """

    def __init__(
        self,
        nodes: Mapping[str, TreeNode],
        rollouts: Mapping[str, Rollout],
        config: dict[str, Any],
        expand: Pregel,
        write: Callable[[Any], None],
        *,
        started_at: float,
        durable: bool = True,
        sync: bool = False,
    ) -> None:
        self.nodes: dict[str, TreeNode] = dict(nodes)
        self.rollouts: dict[str, Rollout] = dict(rollouts)
        self.config = config
        self.settings = SearchSettings.from_config(config)
        tasks = _tasks_for(expand)
        self.action_tasks = tasks.sync_tasks if sync else tasks.tasks
        self.take = _take_sync if sync else _take
        self.write = write
        self.started_at = started_at
        self.durable = durable
        self.usage: dict[str, int] = {}
        self.exhausted: str | None = None  # the budget limit that stopped the search
        self.in_flight: dict[Key, asyncio.Future[ActionOutput]] = {}

    # -- one controller step ------------------------------------------------------------------

    def step(self, seconds: float) -> None:
        """Advance every rollout as far as it can go, announce it, dispatch what it needs
        (nothing once the budget is spent)."""
        spent = Spent.from_usage({"target": self.usage}, seconds)
        step = advance(self.nodes, self.rollouts, self.settings, spent)
        self.nodes = merge_nodes(self.nodes, step.nodes)
        self.rollouts = step.rollouts
        if step.exhausted:
            if self.exhausted is None:  # (actions still in flight are merged; said once)
                self.exhausted = step.exhausted
                about = {"rollouts": self.rollouts, "config": self.config}
                self.write(events.budget_exhausted(step.exhausted, spent, about, step.stopped))
            return
        self._announce(step)
        self._dispatch(step)

    def _announce(self, step: Step) -> None:
        # starts first: a rollout may start and finish within this one step
        for rid in step.started:
            self.write(events.rollout_started(rid, self.settings.num_rollouts))
        for run in step.finished:
            self.write(events.rollout_finished(run, self.nodes[run["path"][-1]]))

    def _dispatch(self, step: Step) -> None:
        # Calls are made in a fixed order (expansion order, then action order): a replay
        # must make the same calls in the same order.
        for exp in step.expansions:
            context = dict(path_context(self.nodes, exp["node_id"], exp["rollout"]))
            for action in exp["actions"]:
                request = ActionRequest(action=action, context=context, config=self.config)
                self.in_flight[(exp["node_id"], action)] = _future(
                    self.action_tasks[action](request)
                )

    def _merge(self, out: ActionOutput) -> None:
        nodes = expand_nodes(out["nodes"])
        self.nodes = merge_nodes(self.nodes, nodes)
        _add_usage(self.usage, dict(zip(USAGE_KEYS, out["usage"], strict=True)))
        self.write(events.node_expanded(out["action"], out["node_id"], nodes))

    async def _record(self, taken: list[str], *, first: bool = False) -> dict[str, Any]:
        """``{"taken": ["<node id>/<action code>", ...], "seconds": spent}``: as given on a
        first run, as recorded on a replay (see the module docstring)."""
        seconds = time.time() - self.started_at
        if not self.durable or (first and self.settings.max_seconds is None):
            return {"taken": taken, "seconds": seconds}
        # (the seconds matter only to max_seconds: recorded only then)
        timed = self.settings.max_seconds is not None
        entry = await _future(
            self.take({"taken": taken, **({"seconds": seconds} if timed else {})})
        )
        return {"seconds": seconds, **entry}

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Run the search to its end: ``{"nodes", "rollouts", "usage", "budget_exhausted"}``."""
        try:
            self.step((await self._record([], first=True))["seconds"])
            while self.in_flight:
                done, _ = await asyncio.wait(
                    self.in_flight.values(), return_when=asyncio.FIRST_COMPLETED
                )
                # (stored once per batch: "0.s1/q" is ("0.s1", "a3_subquestion"))
                ready = [
                    f"{node_id}/{ACTION_CODES[action]}"
                    for (node_id, action), f in sorted(self.in_flight.items())
                    if f in done
                ]
                entry = await self._record(ready)
                for taken in entry["taken"]:
                    node_id, _, code = taken.rpartition("/")
                    action = _ACTION_OF_CODE.get(code, code)
                    future = self.in_flight.pop((node_id, action), None)
                    if future is None:
                        raise RuntimeError(
                            f"the run's record takes ({node_id}, {action}), which this replay "
                            "never sent: the checkpoint belongs to another search"
                        )
                    self._merge(await future)
                self.step(entry["seconds"])
        except BaseException as exc:
            await self._cancel()
            # The caller sees the action's own exception (e.g. BackendError), carrying what
            # the search had computed, so nothing computed is lost.
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, PARTIAL_ATTR, {"nodes": self.nodes, "usage": self.usage})
            raise
        return {
            "nodes": self.nodes,
            "rollouts": self.rollouts,
            "usage": {"target": self.usage},
            "budget_exhausted": self.exhausted,
        }

    async def _cancel(self) -> None:
        futures = list(self.in_flight.values())
        for f in futures:
            f.cancel()
        # (also collects the errors of actions that failed at the same time: not unhandled)
        await asyncio.gather(*futures, return_exceptions=True)
        self.in_flight.clear()


def _future(call: Any) -> asyncio.Future[Any]:
    """A task call's result as an asyncio future (the sync runner hands back a thread future)."""
    if isinstance(call, concurrent.futures.Future):
        return asyncio.wrap_future(call)
    return asyncio.ensure_future(call)


__all__ = [
    "ActionOutput",
    "ActionRequest",
    "Controller",
    "USAGE_KEYS",
    "compact_nodes",
    "expand_nodes",
    "is_durable",
    "partial_of",
]
