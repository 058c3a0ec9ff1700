"""CLI conventions: --version, -d everywhere, choices and defaults in --help, completion, --config FILE."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from conftest import run_aig
from corpus import make_images

from aig.cli import app
from aig.pipeline.cli_config import option_defaults
from aig.pipeline.config import COMMANDS, load_config, read_toml

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aig.toml"


def _commands() -> dict:
    return typer.main.get_command(app).commands


def test_example_config_is_valid_for_every_command():
    tables = read_toml(EXAMPLE)
    assert set(_commands()) == set(COMMANDS) and set(tables) <= set(COMMANDS)
    for name, table in tables.items():
        if name != "build-data":
            assert option_defaults(table, _commands()[name].params, name) is not None
    cfg = load_config(EXAMPLE)
    assert cfg.ingest.size == 256 and cfg.ingest.download.retries == 3 and cfg.stages == ["ingest", "reconstruct"]


def invoke(*args, **kw):
    """The real app in-process (cheap checks; the flows below run it as a subprocess)."""
    from typer.testing import CliRunner

    return CliRunner().invoke(app, [str(a) for a in args], prog_name="aig", terminal_width=200, **kw)


def test_help_shows_choices_and_defaults_without_stray_spaces():
    for name in ["", *COMMANDS]:
        text = invoke(*([name] if name else []), "--help").output
        assert not re.search(r"\w +[.,;:](\s|$)", text) and "<bool>" not in text, (name, text)
        if name:
            assert "-c, --config" in text, name
    help_of = {n: invoke(n, "--help").output for n in ("build-data", "sql", "train", "info")}
    assert "--policy <native|cap|center-crop>" in help_of["build-data"] and "[default: (native)]" in help_of["build-data"]
    assert "<table|csv|json|parquet>" in help_of["sql"] and "[default: table]" in help_of["sql"]
    assert "--branch <pixel|semantic>" in help_of["train"]
    assert "-d, --dataset" in help_of["info"] and "[DATASET]" in help_of["info"]


def test_version_and_completion():
    from importlib.metadata import version

    assert invoke("--version").output == f"aig {version('aig')}\n"
    env = {"_AIG_COMPLETE": "complete_bash", "COMP_WORDS": "aig build-data --policy ", "COMP_CWORD": "3"}
    assert invoke(env=env).output.split() == ["native", "cap", "center-crop"]
    assert "--install-completion" in invoke("--help").output


@pytest.fixture(scope="module")
def example_build(tmp_path_factory):
    """build-data with the example config (inputs, output and speed overridden), plus an empty folder."""
    base = tmp_path_factory.mktemp("conventions")
    make_images(base / "in", 3, size=(48, 40), fmt="PNG")
    (base / "empty").mkdir()
    out = base / "ds"
    proc = run_aig("build-data", "-c", EXAMPLE, "-o", out, "--input-dir", base / "in", "--input-dir", base / "empty",
                   "--stages", "ingest", "--executor", "local")
    return base, out, proc


def test_example_config_runs_and_empty_folder_warns(example_build):
    base, out, proc = example_build
    assert f"input folder '{base / 'empty'}' holds no files" in proc.stderr
    assert "bundled sample photos" not in proc.stderr
    (base / "sql.toml").write_text(f'[sql]\ndataset = "{out}"\nformat = "csv"\n')
    query = "select count(*) as n, min(canonical) as c from samples"
    assert run_aig("sql", "-c", base / "sql.toml", query).stdout == "n,c\n3,cap:256\n"


def test_dataset_positional_or_option(example_build):
    _, out, _ = example_build
    assert "size on disk" in run_aig("info", "-d", out).stdout
    assert invoke("verify", out).output.endswith(": OK\n")
    both = invoke("info", out, "-d", out.parent)
    assert both.exit_code == 2 and "dataset given twice" in both.output


@pytest.mark.parametrize("command, text, message", [
    ("build-data", "[build-data.ingest]\nsize = 256.5\n", "config key 'build-data.ingest.size' must be an integer, got 256.5"),
    ("sql", "[sql]\nmax-rows = \"ten\"\n", "config key 'sql.max-rows' must be an integer, got 'ten'"),
    ("train", "[train]\nbranch = \"both\"\n", "config key 'train.branch' must be one of pixel, semantic, got 'both'"),
    ("info", "[info]\ndataset = 3\n", "config key 'info.dataset' must be a string, got 3"),
    ("train", "[trian]\nlr = 1\n", "unknown table [trian]"),
])
def test_config_errors_are_one_line(tmp_path, command, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    result = invoke(command, "-c", cfg, *(["select 1"] if command == "sql" else []))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and message in result.output, result.output
