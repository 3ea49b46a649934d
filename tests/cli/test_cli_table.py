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
