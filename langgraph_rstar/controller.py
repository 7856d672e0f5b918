"""The barrier-free controller: rollouts resume as soon as the expansion they wait for returns.

A LangGraph superstep ends only when all of its tasks have returned, so a controller that sends
a wave of actions and waits for the next superstep makes every rollout wait for the slowest
action of the wave. Here the whole search is one graph node (``search``) that keeps its
actions in flight as LangGraph tasks (``langgraph.func.task``, one per action, named after
it) and calls :func:`~langgraph_rstar.search.advance` again each time one returns:

    dispatch the expansions advance() asks for -> wait for the FIRST completed action(s)
    -> merge their children into the tree -> advance() -> dispatch -> ...

Each action task shows up under its action's name in ``updates``/``tasks``/``debug`` streams
and in traces, and its result is checkpointed the moment it returns.

**Resume.** After a crash LangGraph re-runs the ``search`` node; a task whose result was
stored returns it at once instead of calling the model. Tasks are matched to stored results by
the order of the calls, so the replay must make the same calls in the same order, i.e. take
completions in the order the first run took them. That order is timing-dependent, so it is
recorded: before merging a batch of completions the controller passes their ids through a
tiny ``controller`` task that returns its input. On the first run it returns what it was
given; on a replay it returns the stored batch, which the controller then takes (those
actions finished in the first run, so their results are stored too). A crashed run thus
re-sends only the actions that had not returned.

**Determinism.** With one rollout in flight the calls, the tree and the random choices are
those of the sequential loop (completions of one expansion are merged in any order, which
does not change the tree). With K > 1 the order in which rollouts resume follows the
completion order, which depends on timing: two runs can grow different (equally valid)
trees. A resumed run follows its recorded order, so it finishes the tree it started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from langgraph.func import task
from langgraph.types import RetryPolicy

from langgraph_rstar import events
from langgraph_rstar.actions import ACTION_FUNCTIONS
from langgraph_rstar.backends import LLMBackend
from langgraph_rstar.config import RStarConfig
from langgraph_rstar.search import (
    ACTION_CODES,
    ACTIONS,
    Rollout,
    SearchSettings,
    Step,
    TreeNode,
    advance,
    merge_nodes,
    new_node,
    path_context,
)
from langgraph_rstar.worker import HomeLoopBackend, run_on_worker

Key = tuple[str, str]  # (node id, action)
_USAGE_KEYS = ("requests", "prompt_tokens", "completion_tokens")


class ActionRequest(TypedDict):
    """What one action task gets: the action, its node's path text, and the run's config."""

    action: str
    context: dict[str, Any]
    config: dict[str, Any]


class ActionOutput(TypedDict):
    """An action task's result (what its ``updates`` stream entry and checkpoint hold)."""

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


def make_action_tasks(target: LLMBackend, retry_policy: RetryPolicy | None = None):
    """One LangGraph task per action, named after it (the name streams and traces show)."""
    tasks = {}
    for action in ACTIONS:
        fn = ACTION_FUNCTIONS[action]

        async def run(request: ActionRequest, fn=fn, action=action) -> ActionOutput:
            # The action's answer reading and voting run on the worker loop, its model calls
            # on this one (see worker.py): a slow comparison stalls no other search.
            result = await run_on_worker(_run_action, fn, request, HomeLoopBackend(target))
            return ActionOutput(
                node_id=request["context"]["node_id"],
                action=action,
                nodes=compact_nodes(result["nodes"]),
                usage=[result["usage"].get(k, 0) for k in _USAGE_KEYS],
            )

        run.__name__ = action
        tasks[action] = task(name=action, retry_policy=retry_policy)(run)
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
    for key, rec in nodes.items():
        if "id" not in rec:  # a partial update (the parent's children entry)
            out[key] = dict(rec)
            continue
        default = new_node(rec["id"], rec["parent"], rec["depth"], rec["kind"], rec["action"])
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


async def _run_action(fn: Any, request: ActionRequest, llm: LLMBackend) -> Any:
    cfg = RStarConfig.from_dict(request["config"])
    return await fn(request["context"], llm, cfg.prompt_pack(), cfg)


@task(name="controller")
async def _take(batch: list[list[str]]) -> list[list[str]]:
    """The completions the controller takes next (stored, so a replay takes the same ones)."""
    return batch


def _add_usage(total: dict[str, int], more: Mapping[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


class Controller:
    """Runs one search to the end; see the module docstring."""

    def __init__(
        self,
        nodes: Mapping[str, TreeNode],
        rollouts: Mapping[str, Rollout],
        config: dict[str, Any],
        action_tasks: Mapping[str, Callable[[ActionRequest], Any]],
        write: Callable[[Any], None],
        *,
        durable: bool = True,
    ) -> None:
        self.nodes: dict[str, TreeNode] = dict(nodes)
        self.rollouts: dict[str, Rollout] = dict(rollouts)
        self.config = config
        self.settings = SearchSettings.from_config(config)
        self.action_tasks = action_tasks
        self.write = write
        self.usage: dict[str, int] = {}
        self.in_flight: dict[Key, asyncio.Future[ActionOutput]] = {}
        # Without a checkpointer nothing is replayed: the completion order need not be recorded.
        self.durable = durable

    # -- one controller step ------------------------------------------------------------------

    def step(self) -> None:
        """Advance every rollout as far as it can go, announce it, dispatch what it needs."""
        step = advance(self.nodes, self.rollouts, self.settings)
        self.nodes = merge_nodes(self.nodes, step.nodes)
        self.rollouts = step.rollouts
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
                call = self.action_tasks[action](request)
                self.in_flight[(exp["node_id"], action)] = asyncio.ensure_future(call)

    def _merge(self, out: ActionOutput) -> None:
        nodes = expand_nodes(out["nodes"])
        self.nodes = merge_nodes(self.nodes, nodes)
        _add_usage(self.usage, dict(zip(_USAGE_KEYS, out["usage"], strict=True)))
        self.write(events.node_expanded(out["action"], out["node_id"], nodes))

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        try:
            self.step()
            while self.in_flight:
                done, _ = await asyncio.wait(
                    self.in_flight.values(), return_when=asyncio.FIRST_COMPLETED
                )
                ready = [list(k) for k, f in sorted(self.in_flight.items()) if f in done]
                taken = await _take(ready) if self.durable else ready
                for node_id, action in taken:
                    future = self.in_flight.pop((node_id, action), None)
                    if future is None:
                        raise RuntimeError(
                            f"the run's record takes ({node_id}, {action}), which this replay "
                            "never sent: the checkpoint belongs to another search"
                        )
                    self._merge(await future)
                self.step()
        except BaseException as exc:
            await self._cancel()
            # The caller sees the action's own exception (e.g. BackendError), carrying what
            # the search had computed, so nothing computed is lost.
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, PARTIAL_ATTR, {"nodes": self.nodes, "usage": self.usage})
            raise
        # (the rollouts' paths are not written: nothing after the search reads them, and a
        # resumed search replays them)
        return {"nodes": self.nodes, "usage": {"target": self.usage}}

    async def _cancel(self) -> None:
        futures = list(self.in_flight.values())
        for f in futures:
            f.cancel()
        # (also collects the errors of actions that failed at the same time: not unhandled)
        await asyncio.gather(*futures, return_exceptions=True)
        self.in_flight.clear()


__all__ = ["ActionRequest", "Controller", "make_action_tasks", "partial_of"]
