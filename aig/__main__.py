"""`python -m aig`: the same as the `aig` command."""

from .cli import main

main()
