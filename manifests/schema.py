"""Manifest tables (samples, failures, runs): their columns, types and on-disk layout."""

from __future__ import annotations

from pathlib import Path

# (column, duckdb/arrow type name). Arrow types are built lazily so `aig sql` never imports pyarrow.
SAMPLES = (
    ("key", "string"),
    ("run_id", "string"),
    ("stage", "string"),  # ingest | (later) reconstruct, generate, ...
    ("task", "string"),  # pixel | semantic | both (reals serve both tasks)
    ("split", "string"),  # train | val | test
    ("label", "string"),  # real | fake
    ("source_id", "string"),  # id of the real image this sample is (or derives from)
    ("group_id", "string"),  # split unit: source_id unless the input names a group
    ("pair_id", "string"),
    ("generator", "string"),
    ("generator_kind", "string"),
    ("model_id", "string"),
    ("seed", "int64"),
    ("prompt", "string"),
    ("provenance", "string"),  # JSON: everything needed to regenerate the sample
    ("input_path", "string"),
    ("origin", "string"),  # folder | list | shards | embedded
    ("caption", "string"),
    ("width", "int32"),
    ("height", "int32"),
    ("format", "string"),
    ("sha256", "string"),
    ("size", "int64"),
    ("shard", "string"),  # tar path relative to the dataset root
    ("member", "string"),
    ("offset_data", "int64"),
    ("source_sha256", "string"),
    ("source_format", "string"),
    ("source_mode", "string"),
    ("source_width", "int32"),
    ("source_height", "int32"),
    ("source_quality", "int32"),  # estimated JPEG quality of the input (JPEG inputs only)
    ("canonical", "string"),  # canonicalisation applied, e.g. cap:512
    ("phash", "string"),  # perceptual hash of the input (16 hex digits; reals, unless near-dup grouping is off)
    ("near_dup_of", "string"),  # key of the first member of its near-duplicate group (null: none, or it is)
    ("recon_psnr", "double"),  # pixel fakes: PSNR (dB) of the reconstruction to its real crop
)

FAILURES = (
    ("input_path", "string"),
    ("run_id", "string"),
    ("stage", "string"),
    ("chunk", "string"),
    ("reason", "string"),
    ("error", "string"),
    ("attempts", "int32"),
    ("duplicate_of", "string"),
)

RUNS = (
    ("run_id", "string"),
    ("command", "string"),
    ("status", "string"),  # running | complete
    ("started_at", "string"),
    ("finished_at", "string"),
    ("config_hash", "string"),
    ("config", "string"),  # JSON of the resolved config
    ("versions", "string"),  # JSON of library versions
    ("git_commit", "string"),
    ("host", "string"),
    ("n_inputs", "int64"),
    ("n_samples", "int64"),
    ("n_failures", "int64"),
    ("resumed", "int32"),
)

def _label_tables() -> dict:
    from labeling.tables import CAPTIONS, SEMANTIC_INCONSISTENCIES, SEMANTIC_LABELS

    return {"semantic_labels": SEMANTIC_LABELS, "semantic_inconsistencies": SEMANTIC_INCONSISTENCIES,
            "captions": CAPTIONS}


TABLES = {"samples": SAMPLES, "failures": FAILURES, "runs": RUNS, **_label_tables()}
MANIFEST_DIR = "manifest"
CATALOG_FILE = "catalog.duckdb"
INFO_FILE = "info.json"
SHARDS_DIR = "shards"

DUCKDB_TYPES = {"string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "double": "DOUBLE"}


def table_dir(root: Path, table: str) -> Path:
    return root / MANIFEST_DIR / table


def arrow_schema(columns):
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "double": pa.float64()}
    return pa.schema([(name, types[t]) for name, t in columns])


def to_table(columns, rows: list[dict]):
    """Rows (dicts) to an Arrow table with exactly the schema's columns; missing values are null."""
    import pyarrow as pa

    schema = arrow_schema(columns)
    return pa.table({name: pa.array([r.get(name) for r in rows], schema.field(name).type)
                     for name in schema.names}, schema=schema)


def parquet_bytes(table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _eval_tables() -> dict:
    """Evaluation tables (issue 6), appended so they show up as catalog views."""
    from evaluation.tables import EVAL_TABLES

    return EVAL_TABLES


TABLES.update(_eval_tables())
