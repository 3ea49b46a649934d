"""The `o2o solve` file format: a generalised assignment problem stated
directly (nodes with capacities, orders with lines and penalties, stock, an
orders x nodes cost matrix with null where not allowed, optional loads).
JSON Schemas in docs/schemas/problem.json and solution.json are generated
from these structs."""
from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta, Struct

from domain.errors import InvalidInput
from engine.routing.problem import Problem, Solution

Name = Annotated[str, Meta(min_length=1)]


class NodeSpec(Struct, forbid_unknown_fields=True):
    id: Name
    capacity: Annotated[float, Meta(ge=0)] | None = None  # none: unlimited


class LineSpec(Struct, forbid_unknown_fields=True):
    sku: Name
    qty: Annotated[int, Meta(ge=1)]


class OrderSpec(Struct, forbid_unknown_fields=True):
    id: Name
    lines: list[LineSpec] = []  # no lines: uses no stock
    penalty: float | None = None  # cost of leaving it unassigned; none: must be assigned


class ProblemFile(Struct, forbid_unknown_fields=True):
    nodes: Annotated[list[NodeSpec], Meta(min_length=1)]
    orders: list[OrderSpec]
    cost: list[list[float | None]]  # orders x nodes; null: not allowed; negative allowed
    stock: dict[str, dict[str, Annotated[int, Meta(ge=0)]]] | None = None  # absent: stock is not limited
    load: list[list[Annotated[float, Meta(ge=0)]]] | None = None  # orders x nodes, default 1
    split: bool = False
    split_penalty: Annotated[float, Meta(ge=0)] = 0.0


class Assignment(Struct, omit_defaults=True):
    order: str
    node: str
    lines: list[str] | None = None  # only for a split order: the SKUs served from this node


class SolutionFile(Struct):
    # optimal: proven; feasible: not proven (bound, if given, is a lower bound on the optimum);
    # infeasible: proven that no answer assigns every must-assign order (greedy: it did not place them all);
    # unknown: no such answer found in the time, infeasibility not proven
    status: Literal["optimal", "feasible", "infeasible", "unknown"]
    objective: float | None  # null when infeasible or unknown
    assignments: list[Assignment]
    unassigned: list[str]
    solve_ms: float
    solver: str
    bound: float | None = None


def to_problem(f: ProblemFile) -> Problem:
    """Checks what types cannot and builds the arrays; errors name the field."""
    n_orders, n_nodes = len(f.orders), len(f.nodes)
    _unique([n.id for n in f.nodes], "nodes")
    _unique([o.id for o in f.orders], "orders")
    _orders_x_nodes(f.cost, "cost", n_orders, n_nodes)
    if f.load is not None:
        _orders_x_nodes(f.load, "load", n_orders, n_nodes)
    node_index = {n.id: j for j, n in enumerate(f.nodes)}
    skus = sorted({line.sku for o in f.orders for line in o.lines})
    sku_index = {s: k for k, s in enumerate(skus)}
    if f.stock is None:
        stock = np.full((n_nodes, len(skus)), np.inf)
    else:
        stock = np.zeros((n_nodes, len(skus)))
        for node, lines in f.stock.items():
            if node not in node_index:
                raise InvalidInput(f"$.stock.{node}", f"unknown node {node!r}")
            for sku, qty in lines.items():
                if sku in sku_index:  # stock of a SKU no order wants changes nothing
                    stock[node_index[node], sku_index[sku]] = qty
    cost = np.array([[np.nan if c is None else c for c in row] for row in f.cost], dtype=float).reshape(n_orders, n_nodes)
    load = np.ones((n_orders, n_nodes)) if f.load is None else np.array(f.load, dtype=float).reshape(n_orders, n_nodes)
    allowed = ~np.isnan(cost)
    order_of, node_of = np.nonzero(allowed)
    # pairs grouped by order, cheapest first
    sort = np.lexsort((cost[order_of, node_of], order_of))
    order_of, node_of = order_of[sort], node_of[sort]
    lines = [[(sku_index[line.sku], line.qty) for line in o.lines] for o in f.orders]
    line_ptr = np.concatenate([[0], np.cumsum([len(x) for x in lines])]).astype(np.int64)
    flat = [x for ls in lines for x in ls]
    return Problem(
        n_nodes=n_nodes, pair_order=order_of.astype(np.int64), pair_node=node_of.astype(np.int64),
        pair_cost=cost[order_of, node_of], pair_load=load[order_of, node_of], line_ptr=line_ptr,
        line_sku=np.array([s for s, _ in flat], dtype=np.int64), line_qty=np.array([q for _, q in flat], dtype=np.int64),
        stock=stock, capacity=np.array([np.inf if n.capacity is None else n.capacity for n in f.nodes], dtype=float),
        penalty=np.array([np.inf if o.penalty is None else o.penalty for o in f.orders], dtype=float),
        split=f.split, split_penalty=f.split_penalty,
    )


def _orders_x_nodes(matrix: list[list], field: str, n_orders: int, n_nodes: int) -> None:
    if len(matrix) != n_orders:
        raise InvalidInput(f"$.{field}", f"has {len(matrix)} rows, expected one per order ({n_orders})")
    for i, row in enumerate(matrix):
        if len(row) != n_nodes:
            raise InvalidInput(f"$.{field}[{i}]", f"has {len(row)} entries, expected one per node ({n_nodes})")


def _unique(ids: list[str], field: str) -> None:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise InvalidInput(f"$.{field}[{i}].id", f"duplicate id {x!r}")
        seen.add(x)


def to_answer(f: ProblemFile, solution: Solution, started: float, solver: str) -> SolutionFile:
    assignments, unassigned = [], []
    for o, spec in enumerate(f.orders):
        parts = solution.parts[o]
        if not parts:
            unassigned.append(spec.id)
        for n, idx in sorted(parts.items()):
            lines = [spec.lines[i].sku for i in idx] if len(parts) > 1 else None
            assignments.append(Assignment(order=spec.id, node=f.nodes[n].id, lines=lines))
    # infeasible or unknown: what was placed is still shown; the must-assign orders left out are among the unassigned
    infeasible = solution.status in ("infeasible", "unknown")
    return SolutionFile(
        status=solution.status, objective=None if infeasible else round(solution.objective, 6),
        assignments=assignments, unassigned=unassigned,
        solve_ms=round((time.perf_counter() - started) * 1000, 3), solver=solver, bound=solution.bound,
    )


def schemas() -> dict[str, dict]:
    return {"problem": msgspec.json.schema(ProblemFile), "solution": msgspec.json.schema(SolutionFile)}
