"""`o2o solve PROBLEM.json [--solver greedy|optimal|exact] [--time-limit S]`:
solves an assignment problem file (docs/schemas/problem.json) and prints the
answer as JSON (docs/schemas/solution.json). Exit 0 with an answer (also
"infeasible"), 2 on a bad file."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

from domain.errors import InvalidInput
from engine.routing.greedy import solve_greedy
from engine.routing.mip import solve_mip, solver_output_to_stderr
from engine.routing.optimal import solve_optimal
from engine.routing.problem_file import ProblemFile, to_answer, to_problem
from engine.routing.types import SOLVERS, RouterSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="solve an assignment problem file and print the answer as JSON",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("problem", help="problem file (JSON), or - for stdin")
    p.add_argument("--solver", choices=SOLVERS, default=RouterSettings().solver)
    p.add_argument("--time-limit", type=float, default=10.0,
                   help="seconds for the optimal solver (default 10); exact has none")
    p.add_argument("--gap", type=float, default=1e-4,
                   help="optimal stops improving an answer this close to its lower bound (relative, default 0.0001)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.problem == "-" else Path(args.problem).read_bytes()
    try:
        spec = msgspec.json.decode(data, type=ProblemFile)
        problem = to_problem(spec)
    except msgspec.ValidationError as e:
        print(f"o2o solve: {args.problem}: {e}", file=sys.stderr)
        return 2
    except msgspec.DecodeError as e:
        print(f"o2o solve: {args.problem}: not valid JSON: {e}", file=sys.stderr)
        return 2
    except InvalidInput as e:
        print(f"o2o solve: {args.problem}: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with solver_output_to_stderr():
        if args.solver == "greedy":
            solution = solve_greedy(problem)
        elif args.solver == "exact":
            solution = solve_mip(problem)
        else:
            solution = solve_optimal(problem, args.time_limit, rel_gap=args.gap)
    answer = to_answer(spec, solution, started, args.solver)
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(answer)).decode() + "\n")
    return 0
