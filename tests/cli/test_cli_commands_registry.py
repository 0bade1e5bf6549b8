"""Every listed subcommand is registered from clsp_cli.commands; a missing one is a loud, named error."""

from __future__ import annotations

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
