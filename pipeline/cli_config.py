"""`--config FILE` for every command: the file's [COMMAND] table gives that command's option defaults.

build-data reads its table into the typed BuildConfig (aig.pipeline.config); the other commands' tables are
typed by their own options: each key is an option name (dashes or underscores), each value must have
the option's type (an int option refuses 256.5, a choice option refuses other words).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .config import ConfigError, read_toml, type_error


def option_defaults(table: dict[str, Any], params: list, where: str) -> dict[str, Any]:
    """Check a command's table against its options; return {parameter name: value} for click's default_map."""
    options = {p.name: p for p in params if p.param_type_name == "option" and p.name not in ("config", "help")}
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        param = options.get(name)
        if param is None:
            known = ", ".join(sorted(n.replace("_", "-") for n in options))
            raise ConfigError(f"unknown config key '{where}.{key}'; known: {known}")
        if err := type_error(f"{where}.{key}", value, param.type_descriptor.annotation):
            raise ConfigError(err)
        out[name] = value
    return out


def _load(ctx: typer.Context, param, value: Optional[Path]) -> Optional[Path]:
    if value is None or ctx.resilient_parsing:
        return value
    name = ctx.info_name
    try:
        table = read_toml(value).get(name, {})
        defaults = option_defaults(table, ctx.command.params, name)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", "-c", is_eager=True, callback=_load, show_default=False,
    help="TOML file; its [COMMAND] table sets this command's options (options given here override it).")]
