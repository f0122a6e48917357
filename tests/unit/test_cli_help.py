"""Every `govshare` command has help text, and `--help` works for each."""

import click
from click.testing import CliRunner

from gateway.cli import cli


def _commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_command_has_help_text():
    runner = CliRunner()
    missing = []
    for path, command in _commands(cli):
        if not (command.help or "").strip():
            missing.append(" ".join(path))
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
    assert missing == []


def test_every_option_is_documented():
    undocumented = [
        (" ".join(path), param.name)
        for path, command in _commands(cli)
        for param in command.params
        if isinstance(param, click.Option) and not param.help and param.name != "help"
    ]
    assert undocumented == []
