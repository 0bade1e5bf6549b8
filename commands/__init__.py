"""One module per ``clsp`` subcommand; each is a thin layer over the library."""
