"""The ``clsp`` command line: a Typer app and the plumbing every subcommand shares."""
