"""`python -m mlipserve.cli`: the same as the `mlipserve` command."""

from mlipserve.cli import app

app()
