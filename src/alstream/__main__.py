"""``python -m alstream``: the same as the ``alstream`` command."""

from alstream.cli import app

app(prog_name="alstream")
