"""Reproduced figures and tables: one module per experiment, each a function and a CLI subcommand."""
