"""Every manifest table (samples, failures, runs, labels, captions, evaluation): columns and types.

Where the tables live on disk: `aig.manifests.layout`."""

from __future__ import annotations

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

# Label tables: semantic_labels (one row per image and annotator/prompt version), semantic_inconsistencies
# (one row per named inconsistency) and captions.
SEMANTIC_LABELS = (
    ("key", "string"),  # the labelled sample's key (join to samples.key)
    ("annotator", "string"),
    ("prompt_version", "string"),
    ("schema_version", "string"),
    ("run_id", "string"),
    ("chunk", "string"),
    ("label", "string"),  # the sample's ground truth: real | fake
    ("generator", "string"),
    ("split", "string"),
    ("verdict", "string"),  # consistent | inconsistent | null (unparsed)
    ("n_inconsistencies", "int32"),
    ("n_counted", "int32"),  # inconsistencies at or above the purity threshold
    ("max_confidence", "double"),
    ("decision", "string"),  # accepted | excluded | quarantined | invalid
    ("decision_reason", "string"),
    ("parse_status", "string"),  # ok | repaired | invalid
    ("attempts", "int32"),
    ("raw_text", "string"),  # the annotator's last output, always kept
    ("annotation", "string"),  # JSON of the validated annotation
    ("sft_key", "string"),  # key of the semantic-sft sample made from it (accepted only)
    ("decoding", "string"),  # JSON: decoding parameters, backend details
    ("purity", "string"),  # JSON: the rules applied
    ("seconds", "double"),
)

SEMANTIC_INCONSISTENCIES = (
    ("key", "string"),
    ("annotator", "string"),
    ("prompt_version", "string"),
    ("label", "string"),
    ("generator", "string"),
    ("split", "string"),
    ("decision", "string"),
    ("idx", "int32"),
    ("category", "string"),
    ("description", "string"),
    ("confidence", "double"),
    ("box", "string"),  # JSON [x0, y0, x1, y1] or null
)

CAPTIONS = (
    ("key", "string"),
    ("source_id", "string"),
    ("caption", "string"),
    ("annotator", "string"),
    ("prompt_version", "string"),
    ("run_id", "string"),
    ("chunk", "string"),
    ("raw_text", "string"),
)

# Evaluation tables (views in the catalog, queryable with `aig sql`).
EVAL_RUNS = (
    ("eval_id", "string"),
    ("created_at", "string"),
    ("command", "string"),
    ("config", "string"),  # JSON: tau, fusion, weight, perturbations, sources, models
    ("pixel_checkpoint", "string"),
    ("semantic_model", "string"),
    ("semantic_adapter", "string"),
    ("n_images", "int64"),
    ("n_unreadable", "int64"),
    ("seconds", "double"),
)

EVAL_SCORES = (  # one row per image and perturbation
    ("eval_id", "string"),
    ("perturbation", "string"),  # none | jpeg75 | resize0.5 | crop0.75 ...
    ("benchmark", "string"),
    ("item", "string"),  # sample key (dataset) or file path (benchmark)
    ("label", "string"),  # real | fake
    ("generator", "string"),
    ("subset", "string"),  # semantic | pixel | null
    ("status", "string"),  # ok | missing | unreadable: ... (excluded from metrics)
    ("pixel_prob", "double"),
    ("semantic_verdict", "string"),  # real | fake | null (answer not readable: counted as real)
    ("semantic_status", "string"),  # ok | repaired | invalid
    ("semantic_score", "double"),  # P(fake) from the likelihood of the verdict word (ranking score)
    ("inconsistencies", "string"),  # JSON list named by the VLM
    ("semantic_text", "string"),  # the VLM's raw answer
    ("fused_score", "double"),
    ("fused_pred", "string"),  # real | fake
    ("fired", "string"),  # pixel | semantic | both | none
)

EVAL_RESULTS = (  # one row per perturbation, benchmark, group and detector
    ("eval_id", "string"),
    ("perturbation", "string"),
    ("benchmark", "string"),
    ("group_kind", "string"),  # all | generator | subset
    ("group_name", "string"),
    ("detector", "string"),  # pixel | semantic | fused
    ("n_real", "int64"),
    ("n_fake", "int64"),
    ("real_acc", "double"),
    ("fake_acc", "double"),
    ("balanced_acc", "double"),
    ("ap", "double"),
    ("auroc", "double"),
)

EVAL_TABLES = {"eval_runs": EVAL_RUNS, "eval_scores": EVAL_SCORES, "eval_results": EVAL_RESULTS}

TABLES = {"samples": SAMPLES, "failures": FAILURES, "runs": RUNS, "semantic_labels": SEMANTIC_LABELS,
          "semantic_inconsistencies": SEMANTIC_INCONSISTENCIES, "captions": CAPTIONS, **EVAL_TABLES}
DUCKDB_TYPES = {"string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "double": "DOUBLE"}


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


def read_parquet(source, columns: list[str] | None = None):
    """A Parquet file (path, file object or buffer) as an Arrow table, read synchronously in this thread and
    closed on return. `pq.read_table` scans asynchronously: its pool threads can drop the last reference to a
    Python file or buffer after the call, which aborts the process when that happens during interpreter exit."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(source, pre_buffer=False) as f:
        return f.read(columns=columns, use_threads=False)


def parquet_bytes(table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()
