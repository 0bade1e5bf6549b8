"""Every listed subcommand is registered from clsp_cli.commands; a missing one is a loud, named error."""

from __future__ import annotations

import os
import sys

import pytest
import typer

from tests.helpers.assets import REPO
from clsp_cli.app import COMMANDS, MissingCommandError, app, register


def test_every_listed_command_is_registered_from_the_cli_package():
    group = typer.main.get_group(app)
    assert sorted(group.commands) == sorted(COMMANDS)
    for name, (module, _) in COMMANDS.items():
        assert module == f"clsp_cli.commands.{name}"
        assert module in sys.modules
    assert "commands" not in sys.modules  # nothing imports the source folder under its own name


def test_a_missing_command_module_is_an_error_naming_command_and_module():
    target = typer.Typer()
    listed = {"embed": COMMANDS["embed"], "ghost": ("clsp_cli.commands.ghost", "main")}
    with pytest.raises(MissingCommandError) as err:
        register(target, listed)
    message = str(err.value)
    assert "'ghost'" in message and "clsp_cli.commands.ghost" in message


def test_a_missing_entry_point_is_an_error_naming_it():
    with pytest.raises(MissingCommandError, match="'main_v2'"):
        register(typer.Typer(), {"embed": ("clsp_cli.commands.embed", "main_v2")})


def test_an_import_error_inside_a_present_module_is_not_reworded(tmp_path, monkeypatch):
    (tmp_path / "clsp_fake_cmd.py").write_text("import clsp_no_such_dependency\nmain = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as err:
        register(typer.Typer(), {"fake": ("clsp_fake_cmd", "main")})
    assert not isinstance(err.value, MissingCommandError)
    assert err.value.name == "clsp_no_such_dependency"


def test_command_modules_install_under_the_cli_package_only():
    import fnmatch
    import tomllib
    from pathlib import Path

    root = REPO
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = setup["packages"]["find"]["include"]
    assert not any(fnmatch.fnmatch("commands", pattern) for pattern in include)  # no top-level `commands`
    assert any(fnmatch.fnmatch("clsp_cli.commands", pattern) for pattern in include)
    assert setup["package-dir"]["clsp_cli.commands"] == "commands"
    # the source tree imports the same files under the installed name
    assert (root / "clsp_cli" / "commands").resolve() == (root / "commands").resolve()


def test_threads_option_sets_the_model_threads(monkeypatch):
    import torch
    from typer.testing import CliRunner

    from clsp_cli.app import app

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "7")  # restored after the test
    try:
        res = CliRunner().invoke(app, ["--threads", "1", "classify", "--list-packs"])
        assert res.exit_code == 0, res.output
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        res = CliRunner().invoke(app, ["--threads", "0", "classify", "--list-packs"])
        assert res.exit_code == 2
    finally:
        torch.set_num_threads(before)
