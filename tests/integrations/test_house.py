"""The integration's house (issue #12): no import cycles in ``bertwatt.integrations``, no frame
walks or garbage-collector searches, each module keeps its own state, the session is changed only
through its methods, and the per-step hot path reads nothing from the batch."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from hf_helpers import POWER_W, fake_sensor

import bertwatt.integrations
from bertwatt.integrations.plan import RunPlan
from bertwatt.integrations.session import FinetuneSession
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeClock

PACKAGE = "bertwatt.integrations"
ROOT = Path(bertwatt.integrations.__file__).parent


def _module_name(path: Path, package: str) -> str:
    return package if path.name == "__init__.py" else f"{package}.{path.stem}"


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Edges module -> package modules it imports, from every import statement in the source:
    top level, under ``TYPE_CHECKING`` and inside functions alike (relative ones resolved)."""
    modules = {_module_name(p, package): p for p in sorted(root.glob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    mod = f"{base}.{node.module}" if node.module else base
                else:
                    mod = node.module or ""
                # ``from M import x``: the submodule M.x when there is one, else M itself
                targets = [
                    f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names
                ]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of modules that import each other (Tarjan), as lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle_hidden_under_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import x\n"
    )
    (pkg / "c.py").write_text("def f():\n    from . import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_no_import_cycles_in_bertwatt_integrations() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert len(graph) > 15 and graph[f"{PACKAGE}.session"]  # the real tree was read
    assert find_cycles(graph) == []


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.glob("*.py")):
        yield path.name, ast.parse(path.read_text(), filename=str(path))


def test_no_frame_walks_or_garbage_collector_searches() -> None:
    """The Trainer's callbacks are reached through what transformers hands over
    (``EnergyCallback.attach(trainer)``), never through frames or gc referrers."""
    banned = {"_getframe", "get_referrers", "get_referents", "currentframe", "stack", "f_back"}
    found = [
        (name, node.lineno, node.attr)
        for name, tree in _sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in banned
        and not (node.attr == "stack" and getattr(node.value, "id", "") == "torch")
    ]
    found += [
        (name, node.lineno, alias.name)
        for name, tree in _sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if alias.name in ("gc", "_getframe", "get_referrers", "currentframe")
    ]
    assert found == []


def test_no_module_reads_or_sets_another_modules_private_attributes() -> None:
    """``x._name`` (x not ``self``/``cls``) only for names a class of the same module defines:
    e.g. the session's closures may read the session's own fields, no other module may."""
    problems = []
    for name, tree in _sources():
        own = {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
            and isinstance(node.ctx, ast.Store)
        }
        own |= {
            target.id
            for cls in ast.walk(tree)
            if isinstance(cls, ast.ClassDef)
            for stmt in cls.body
            if isinstance(stmt, ast.Assign)
            for target in stmt.targets
            if isinstance(target, ast.Name)
        }
        own |= {
            stmt.name
            for cls in ast.walk(tree)
            if isinstance(cls, ast.ClassDef)
            for stmt in cls.body
            if isinstance(stmt, ast.FunctionDef)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in own
            ):
                problems.append(f"{name}:{node.lineno}: .{node.attr}")
    assert problems == []


def test_the_session_is_changed_only_through_its_methods() -> None:
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    session = FinetuneSession(meter, total_steps=4)
    public = [n for n in dir(FinetuneSession) if not n.startswith("_")]
    data = [n for n in public if not callable(getattr(FinetuneSession, n))]
    assert data and all(isinstance(getattr(FinetuneSession, n), property) for n in data)
    assert all(getattr(FinetuneSession, n).fset is None for n in data)  # read-only views
    for name in ("expected_evals", "steps_done", "previous", "mode", "extra"):
        with pytest.raises(AttributeError):
            setattr(session, name, 4)  # no attribute can be set from outside
    assert not hasattr(session, "__dict__")
    meter.start()
    session.begin_train(RunPlan(expected_evals=2, run_facts={"model_name": "m"}))
    session.step(examples=2, tokens_padded=8)
    session.add_extra("note", 1)
    session.end_train()
    snap = session.snapshot()
    assert (snap.expected_evals, snap.steps_done, snap.extra["note"]) == (2, 1, 1)
    assert snap.run_facts["model_name"] == "m"
    with pytest.raises(AttributeError):
        snap.steps_done = 3  # type: ignore[misc]  # a frozen snapshot
    meter.stop(warn=False)


class _Probe:
    """Stands in for a tensor and counts every attribute read (shape, ne, sum, ...)."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> object:
        self.reads.append(name)
        raise AttributeError(name)


class _Module:
    training = True


def test_the_forward_hook_and_step_end_read_nothing_from_the_batch() -> None:
    """Per step the hook keeps references and step_end adds integers: every read of the
    inputs waits for the record to close (here: the counts taken for the report)."""
    pytest.importorskip("torch")
    from bertwatt.integrations.tokens import TokenCounter

    counter = TokenCounter()
    routed: list[object] = []
    hook = counter.forward_hook(lambda m, a, k: routed.append(k), lambda err: None)
    ids, mask = _Probe(), _Probe()
    hook(_Module(), (), {"input_ids": ids, "attention_mask": mask})  # closed: routed on
    assert len(routed) == 1
    counter.open(True)
    for _ in range(10):
        hook(_Module(), (), {"input_ids": ids, "attention_mask": mask})
    assert ids.reads == [] and mask.reads == [] and len(routed) == 1
    assert counter.pending
    counts = counter.take()  # now the inputs are read; probes are no tensors: not counted
    assert counts.batches == 0 and counter.uncounted == 10 and mask.reads


def test_the_default_early_prediction_waits_for_the_first_scheduled_evaluation() -> None:
    """Issue #12's case: 200 steps, an evaluation every 50. At the default 10 % (step 20) the
    evaluations were left out (-37 %); the plan's first evaluation (step 50, in the first half)
    is measured first, and the three still to come are included: exact on a fake clock."""
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    session = FinetuneSession(meter)
    meter.start()
    session.begin_train(
        RunPlan(total_steps=200, expected_evals=4, first_eval_step=50, expected_saves=0)
    )
    for step in range(1, 201):
        clock.advance(0.1)
        session.step_end(step)
        if step % 50 == 0:
            with session.phase("eval"):
                clock.advance(2.0)
    session.end_train()
    p = session.build_report(meter.stop(warn=False)).prediction
    assert p is not None and p.at_step == 50
    assert "plus 3 evaluation(s)" in p.basis
    assert p.actual_energy_j == pytest.approx((200 * 0.1 + 4 * 2.0) * POWER_W)
    assert p.error == pytest.approx(0.0, abs=1e-9)


def test_the_live_line_goes_into_the_trainers_progress_bar() -> None:
    """Attached, the callback hands the Trainer's callback list to the live line, which draws
    into the ProgressCallback's bar (postfix) instead of a second line on stderr."""
    pytest.importorskip("transformers")
    from transformers.trainer_callback import ProgressCallback

    from bertwatt.integrations.trainer_state import live_line

    class Bar:
        postfix = ""

        def set_postfix_str(self, text: str, refresh: bool = True) -> None:
            self.postfix = text

    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    meter.start()
    progress = ProgressCallback()
    progress.training_bar = Bar()
    clock.advance(2.0)
    line = live_line(meter, [progress], False)  # off (no terminal here): drawn by hand
    line.draw()
    meter.stop(warn=False)
    assert "W now" in progress.training_bar.postfix and "so far" in progress.training_bar.postfix
    assert not progress.training_bar.postfix.startswith("bertwatt")


#: Attributes of objects from outside bertwatt that the integration sets, by design: the
#: Trainer's state it stores its checkpoint figures in, and the demo model's config.
_EXTERNAL_SETS = {("resume.py", "stateful_callbacks"), ("demo.py", "num_labels")}


def _own_fields(tree: ast.Module) -> set[str]:
    """Attributes the classes of a module define: ``self.x = ...`` and class-level fields."""
    fields = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and isinstance(node.ctx, ast.Store)
    }
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef):
            for stmt in cls.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    fields.add(stmt.target.id)
    return fields


def test_each_module_sets_only_attributes_of_its_own_classes() -> None:
    """No module sets a field of another module's object (the session's, a counter's, a
    value's): it asks the owner (``use_pad_token_id``, ``add_extra``, ``begin_train(plan)``)."""
    problems = []
    for name, tree in _sources():
        own = _own_fields(tree)
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if (
                        isinstance(t, ast.Attribute)
                        and not (isinstance(t.value, ast.Name) and t.value.id in ("self", "cls"))
                        and t.attr not in own
                        and (name, t.attr) not in _EXTERNAL_SETS
                    ):
                        problems.append(f"{name}:{node.lineno}: {ast.unparse(t)}")
    assert problems == []
