"""The command table: each command's module registers exactly the commands
the table names for it, and `o2o --help` still lists them all."""
from __future__ import annotations

import argparse
import importlib
from collections import defaultdict

import pytest

from adapters.cli import COMMANDS, build_parser, main


def test_every_module_registers_exactly_the_commands_the_table_gives_it():
    named = defaultdict(set)
    for command, module in COMMANDS.items():
        named[module].add(command)
    for module, commands in named.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert set(sub.choices) == commands, module


def test_help_lists_every_command_and_a_command_parses_with_only_its_module(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    assert all(command in listed for command in COMMANDS)
    args = build_parser("state").parse_args(["state"])
    assert args.command == "state" and callable(args.func)


def test_an_unknown_command_is_refused_with_the_known_ones_named(capsys):
    with pytest.raises(SystemExit) as done:
        main(["sevre"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'sevre'" in err and "serve" in err


def test_o2o_keeps_numpy_to_one_blas_thread_unless_told_otherwise():
    # the router's searches end at a deadline: a second BLAS thread spends the other core for no sooner answer
    import os
    import subprocess
    import sys

    count = "import numpy as np, os; x = np.ones(2_000_000); x @ x; print(len(os.listdir('/proc/self/task')))"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    ran = [subprocess.run([sys.executable, "-c", f"import adapters.cli; {count}" if o2o else count], env=env,
                          capture_output=True, text=True, check=True).stdout.split() for o2o in (True, False)]
    assert ran[0] == ["1"]
    assert os.cpu_count() < 2 or ran[1] != ["1"]  # (numpy's own default: a thread per core)
    told = subprocess.run([sys.executable, "-c", "import adapters.cli, os; print(os.environ['OPENBLAS_NUM_THREADS'])"],
                          env={**env, "OPENBLAS_NUM_THREADS": "2"}, capture_output=True, text=True, check=True)
    assert told.stdout.split() == ["2"]
