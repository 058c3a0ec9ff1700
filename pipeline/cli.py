"""The `aig` command line. Heavy libraries (torch, ray, pyarrow, PIL) are imported inside commands only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .config import DEFAULT_OUTPUT

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build, query and check datasets for AI-generated image detection.")

DatasetArg = Annotated[Path, typer.Option("--dataset", "-d", help="Dataset folder.")]
DatasetLocation = Annotated[str, typer.Option("--dataset", "-d", help="Dataset folder or URL (s3://bucket/prefix).")]


def fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


@app.command("build-data")
def build_data(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file; options below override it.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help=f"Dataset folder [default: {DEFAULT_OUTPUT}].")] = None,
    input_dir: Annotated[Optional[list[str]], typer.Option("--input-dir", help="Folder of images (recursive). Repeatable.")] = None,
    input_list: Annotated[Optional[list[str]], typer.Option("--input-list", help="CSV/TSV/Parquet with a path column (+ caption, group) or a text file of paths. Repeatable.")] = None,
    input_shards: Annotated[Optional[list[str]], typer.Option("--input-shards", help="WebDataset tars: paths, a folder, a glob or a brace pattern. Repeatable.")] = None,
    stages: Annotated[Optional[str], typer.Option(help="Comma-separated stages to run: ingest, reconstruct, inpaint, generate [default: all].")] = None,
    policy: Annotated[Optional[str], typer.Option(help="Canonicalisation: native (default: native pixels, centre-cropped to at most size x size, never resized), cap (downscaled to longest side <= size), center-crop (square resized to size).")] = None,
    size: Annotated[Optional[int], typer.Option(help="Pixels: native's maximum side (default 2048), cap's maximum side or center-crop's side (default 512).")] = None,
    min_size: Annotated[Optional[int], typer.Option(help="Reject images whose shorter side is below this.")] = None,
    max_pixels: Annotated[Optional[int], typer.Option(help="Reject images with more pixels (decompression bombs).")] = None,
    image_format: Annotated[Optional[str], typer.Option(help="Stored format: png (lossless) or jpeg.")] = None,
    jpeg_quality: Annotated[Optional[int], typer.Option(help="Quality when --image-format jpeg.")] = None,
    samples_per_shard: Annotated[Optional[int], typer.Option(help="Inputs per chunk and max samples per tar.")] = None,
    max_shard_bytes: Annotated[Optional[int], typer.Option(help="Max bytes per tar.")] = None,
    split_seed: Annotated[Optional[str], typer.Option(help="Seed of the hash that assigns splits.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split fractions 'TRAIN,VAL,TEST' (default 0.8,0.1,0.1).")] = None,
    autoencoder: Annotated[Optional[list[str]], typer.Option(help="Reconstruct stage: diffusers autoencoder, hub id or local path, optional ':SUBFOLDER' (e.g. stabilityai/stable-diffusion-2-1:vae). Repeatable [default: embedded].")] = None,
    latent: Annotated[Optional[str], typer.Option(help="Reconstruct stage: sample (seeded per pair) or mode.")] = None,
    pair_format: Annotated[Optional[str], typer.Option(help="Pixel pairs: auto (default; both as JPEG at the real's own quality for JPEG sources, else PNG; jpeg-matched is the same), or png (both lossless).")] = None,
    inpaint_model: Annotated[Optional[list[str]], typer.Option(help="Inpaint stage: diffusers inpainting pipeline, hub id or path. Repeatable.")] = None,
    inpaint_mask: Annotated[Optional[str], typer.Option(help="Inpaint stage: empty (regenerate all) or rectangle.")] = None,
    inpaint_steps: Annotated[Optional[int], typer.Option(help="Inpaint stage: inference steps.")] = None,
    t2i_model: Annotated[Optional[list[str]], typer.Option(help="Generate stage: diffusers text-to-image pipeline, hub id or path. Repeatable.")] = None,
    t2i_steps: Annotated[Optional[int], typer.Option(help="Generate stage: inference steps.")] = None,
    t2i_guidance: Annotated[Optional[float], typer.Option(help="Generate stage: guidance scale.")] = None,
    t2i_size: Annotated[Optional[int], typer.Option(help="Generate stage: pixel area as a side (SIZE x SIZE) [default: the pipeline's native size].")] = None,
    t2i_aspect: Annotated[Optional[str], typer.Option(help="Generate stage: source (default: each fake at its source real's aspect ratio) or fixed (SIZE x SIZE).")] = None,
    prompts: Annotated[Optional[list[str]], typer.Option(help="Generate stage: a text file of extra prompts, one a line. Repeatable.")] = None,
    images_per_prompt: Annotated[Optional[int], typer.Option(help="Generate stage: images per caption.")] = None,
    negative_prompt: Annotated[Optional[str], typer.Option(help="Generate stage: negative prompt.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Generate stage: diffusers scheduler class to use.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Model stages: images per batch.")] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="Model stages: GPUs per actor (fractions allowed; default 1 when the cluster has GPUs).")] = None,
    executor: Annotated[Optional[str], typer.Option(help="ray (default) or local (in-process, for debugging).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Existing Ray cluster (else RAY_ADDRESS, else a local Ray).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="CPUs for the local Ray (0 = all).")] = None,
    max_retries: Annotated[Optional[int], typer.Option(help="Retries of a failing sample or crashed task.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete the dataset and start fresh.")] = False,
) -> None:
    """Ingest real images into WebDataset shards with a Parquet/DuckDB manifest (resumable, appendable)."""
    from .config import ConfigError, load_config
    from .sources import InputError

    overrides = {
        "output": output, "inputs.folders": input_dir, "inputs.lists": input_list, "inputs.shards": input_shards,
        "stages": stages.split(",") if stages else None, "ingest.policy": policy, "ingest.size": size,
        "ingest.min_size": min_size, "ingest.max_pixels": max_pixels, "ingest.image_format": image_format,
        "ingest.jpeg_quality": jpeg_quality, "shards.samples_per_shard": samples_per_shard,
        "shards.max_shard_bytes": max_shard_bytes, "split.seed": split_seed, "runner.executor": executor,
        "runner.ray_address": ray_address, "runner.workers": workers, "runner.max_retries": max_retries,
        "runner.gpus_per_worker": gpus_per_worker, "reconstruct.autoencoders": autoencoder,
        "reconstruct.latent": latent, "reconstruct.pair_format": pair_format, "inpaint.pair_format": pair_format,
        "inpaint.pipelines": inpaint_model, "inpaint.mask": inpaint_mask, "inpaint.steps": inpaint_steps, "generate.pipelines": t2i_model,
        "generate.steps": t2i_steps, "generate.guidance": t2i_guidance, "generate.width": t2i_size,
        "generate.height": t2i_size, "generate.aspect": t2i_aspect, "generate.images_per_prompt": images_per_prompt, "generate.prompt_files": prompts,
        "generate.negative_prompt": negative_prompt, "generate.scheduler": scheduler,
        "reconstruct.batch_size": batch_size, "inpaint.batch_size": batch_size, "generate.batch_size": batch_size,
    }
    if split:
        try:
            fractions = [float(v) for v in split.split(",")]
        except ValueError:
            fractions = []
        if len(fractions) != 3:
            fail(f"--split takes three fractions 'TRAIN,VAL,TEST', got {split!r}")
        overrides.update(zip(("split.train", "split.val", "split.test"), fractions))
    try:
        cfg = load_config(config, overrides)
    except ConfigError as e:
        fail(str(e))
    from generators.autoencoder import ModelLoadError

    from .build import BuildError, build
    from .storage import StorageError

    try:
        report = build(cfg, command=" ".join(["aig", *sys.argv[1:]]), overwrite=overwrite)
    except (BuildError, InputError, ModelLoadError, StorageError) as e:
        fail(str(e))
    typer.echo(f"dataset: {report.location or report.root.resolve()}")
    typer.echo(f"run {report.run_id}{' (resumed)' if report.resumed else ''}: {report.seconds:.1f}s "
               f"({report.ray_startup_s:.1f}s of it Ray start-up)")
    ingested = report.by_stage.get("ingest", (0, 0))
    typer.echo(f"  ingest: {report.inputs} inputs -> {ingested[0]} samples, {ingested[1]} failures")
    for stage, (n, f) in report.by_stage.items():
        if stage != "ingest":
            typer.echo(f"  {stage}: {n} samples, {f} failures")
    _print_summary(report.root)
    typer.echo(f"query it: aig sql -d {report.location or report.root} \"select split, count(*) from samples group by all\"")


def _print_summary(root: Path) -> None:
    from manifests.catalog import run_query

    queries = [
        ("samples", "select task, split, label, coalesce(generator, '-') as generator, count(*) as n "
                    "from samples group by all order by all"),
        ("failures", "select stage, reason, count(*) as n from failures group by all order by n desc, reason"),
    ]
    for title, q in queries:
        con, rel = run_query(root, q)
        rows = rel.fetchall()
        typer.echo(f"{title}:" + ("" if rows else " none"))
        for r in rows:
            typer.echo("  " + "  ".join(str(v) for v in r))
        con.close()


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views samples, failures, runs, shards, semantic_labels, semantic_inconsistencies, captions.")],
    dataset: DatasetLocation = DEFAULT_OUTPUT,
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or parquet.")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", help="Write to this file (required for parquet).")] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown by the table format.")] = 100,
) -> None:
    """Run read-only SQL against a dataset's DuckDB catalog."""
    import duckdb

    from manifests.catalog import CatalogError, run_query

    from .storage import StorageError, local_view

    if format not in ("table", "csv", "json", "parquet"):
        fail(f"--format {format!r} unknown; use table, csv, json or parquet")
    if format == "parquet" and output is None:
        fail("--format parquet needs --output FILE")
    try:
        con, rel = run_query(local_view(dataset), query)
    except (CatalogError, StorageError) as e:
        fail(str(e))
    except duckdb.Error as e:
        fail(f"query failed: {e}")
    try:
        if format == "table":
            rel.show(max_rows=max_rows, max_width=10_000)
        elif format == "parquet":
            rel.write_parquet(str(output))
        elif format == "csv":
            if output:
                rel.write_csv(str(output), header=True)
            else:
                import csv

                w = csv.writer(sys.stdout, lineterminator="\n")
                w.writerow(rel.columns)
                w.writerows(rel.fetchall())
        else:
            cols = rel.columns
            text = json.dumps([dict(zip(cols, r)) for r in rel.fetchall()], default=str, indent=1)
            output.write_text(text + "\n") if output else typer.echo(text)
    except duckdb.Error as e:
        fail(f"query failed: {e}")
    finally:
        con.close()


@app.command()
def verify(dataset: Annotated[str, typer.Argument(help="Dataset folder or URL.")] = DEFAULT_OUTPUT) -> None:
    """Check every manifest row against its tar member, and shards against done markers."""
    from .storage import StorageError
    from .verify import verify_dataset

    try:
        problems = verify_dataset(dataset)
    except StorageError as e:
        fail(str(e))
    if problems:
        typer.echo(f"{dataset}: {len(problems)} problem(s)")
        for p in problems:
            typer.echo(f"  - {p}")
        raise typer.Exit(1)
    typer.echo(f"{dataset}: OK")


@app.command()
def info(dataset: Annotated[str, typer.Argument(help="Dataset folder or URL.")] = DEFAULT_OUTPUT) -> None:
    """Counts by task, split, label and generator; failures by reason; size on disk."""
    from manifests.catalog import CatalogError

    from .storage import StorageError, dataset_files, is_url, local_view

    try:
        root = local_view(dataset)
        _print_summary(root)
        total, tars = dataset_files(dataset, root).total_bytes()
    except (CatalogError, StorageError) as e:
        fail(str(e))
    typer.echo(f"size {'in storage' if is_url(dataset) else 'on disk'}: {total / 1e6:.1f} MB ({tars / 1e6:.1f} MB in tars)")


@app.command()
def regenerate(
    key: Annotated[str, typer.Argument(help="Key of a generated sample.")],
    dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the regenerated image here.")] = None,
) -> None:
    """Rebuild one generated sample from its manifest row and check it equals the stored one."""
    from generators.autoencoder import ModelLoadError
    from generators.regenerate import RegenerateError
    from generators.regenerate import regenerate as run

    try:
        result = run(dataset, key)
    except (RegenerateError, ModelLoadError) as e:
        fail(str(e))
    if output:
        output.write_bytes(result.data)
        typer.echo(f"wrote {output}")
    typer.echo(f"{key}: {'identical to' if result.identical else 'DIFFERENT from'} the stored sample "
               f"(sha256 {result.stored_sha256[:16]}...)")
    if not result.identical:
        raise typer.Exit(1)


# --- evaluation (issue 6): bodies in evaluation/cli.py -------------------------------------------
PixelOpt = Annotated[Optional[str], typer.Option("--pixel", help="Pixel-branch checkpoint (aig train-pixel).")]
SemModelOpt = Annotated[Optional[str], typer.Option("--semantic-model", help="Semantic-branch VLM: hub id or path (base model).")]
SemAdapterOpt = Annotated[Optional[str], typer.Option("--semantic-adapter", help="LoRA adapter folder for the VLM (aig train-semantic).")]
TauOpt = Annotated[str, typer.Option("--tau", help="Pixel threshold: fake if P(fake) > tau; 'calibrated' = the checkpoint's own.")]
FusionOpt = Annotated[str, typer.Option("--fusion", help="or (fake if pixel > tau OR the VLM says fake) or mean (score-level).")]
WeightOpt = Annotated[float, typer.Option("--weight", help="mean fusion: weight of the pixel score.")]
ConstrainedOpt = Annotated[bool, typer.Option("--constrained", help="Decode VLM answers under their JSON schema (llguidance; compact JSON), e.g. for an untrained VLM.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads for inference [default: half the cores, at most 4].")]


@app.command()
def evaluate(
    dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    split: Annotated[str, typer.Option(help="Dataset split to score, or none (benchmarks only).")] = "test",
    benchmark: Annotated[Optional[list[str]], typer.Option("--benchmark", "-b", help="[NAME=]folder (0_real/1_fake, real/fake, nature/ai) or CSV/Parquet path,label[,generator]. Repeatable.")] = None,
    pixel: PixelOpt = None, semantic_model: SemModelOpt = None, semantic_adapter: SemAdapterOpt = None,
    tau: TauOpt = "0.5", fusion: FusionOpt = "or", weight: WeightOpt = 0.5,
    sweep: Annotated[bool, typer.Option("--sweep", help="Robustness sweep: JPEG 95/75/50, resize 0.5x/2x, centre crop 0.75.")] = False,
    perturb: Annotated[Optional[list[str]], typer.Option("--perturb", help="Extra post-processing: jpegQ, resizeF, cropF. Repeatable.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per pixel batch (VLM: a quarter).")] = 16,
    max_new_tokens: Annotated[int, typer.Option(help="VLM answer length limit.")] = 256,
    threads: ThreadsOpt = None, constrained: ConstrainedOpt = False,
) -> None:
    """Score a dataset's test split and/or benchmarks: each branch, fused; tables, plots, Parquet in the catalog."""
    from evaluation.cli import evaluate as run

    run(dataset, split, benchmark or [], pixel, semantic_model, semantic_adapter, tau, fusion, weight, sweep,
        perturb or [], batch_size, max_new_tokens, threads, constrained)


@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Images or folders.")],
    pixel: PixelOpt = None, semantic_model: SemModelOpt = None, semantic_adapter: SemAdapterOpt = None,
    tau: TauOpt = "0.5", fusion: FusionOpt = "or", weight: WeightOpt = 0.5,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="VLM answer length limit.")] = 256,
    threads: ThreadsOpt = None, constrained: ConstrainedOpt = False,
) -> None:
    """Per image: verdict, both branch scores, which branch fired, the VLM's named inconsistencies."""
    from evaluation.cli import predict as run

    run(paths, pixel, semantic_model, semantic_adapter, tau, fusion, weight, json_out, max_new_tokens, threads, constrained)


@app.command()
def audit(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder.")] = Path(DEFAULT_OUTPUT),
    threshold: Annotated[float, typer.Option(help="Flag an attribute whose one-feature AUROC exceeds this.")] = 0.6,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a shortcut is found.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Shortcut audit: format, JPEG quality, size, aspect, EXIF, file size, mode per split and class."""
    from evaluation.cli import audit as run

    run(dataset, threshold, strict, json_out)


@app.command()
def report(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder.")] = Path(DEFAULT_OUTPUT),
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file [default: DATASET/report.html].")] = None,
    pairs: Annotated[int, typer.Option(help="Pixel pairs in the gallery.")] = 6,
    threshold: Annotated[float, typer.Option(help="Audit threshold.")] = 0.6,
) -> None:
    """One static HTML page: counts, provenance, pair gallery, semantic fakes, audit, evaluation."""
    from evaluation.cli import report as run

    run(dataset, output, pairs, threshold)


@app.command("label-semantic")
def label_semantic(
    dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    model: Annotated[Optional[str], typer.Option(help="The annotator VLM: hub id or local path (transformers), or the served model name (openai).")] = None,
    backend: Annotated[str, typer.Option(help="transformers (a local chat VLM) or openai (an OpenAI-compatible endpoint).")] = "transformers",
    revision: Annotated[Optional[str], typer.Option(help="Model revision (transformers).")] = None,
    base_url: Annotated[Optional[str], typer.Option(envvar="OPENAI_BASE_URL", help="Endpoint, e.g. http://localhost:8000/v1 (openai).")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="OPENAI_API_KEY", help="API key (openai); read from OPENAI_API_KEY.", show_default=False)] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight (openai).")] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one reply (openai).")] = 120.0,
    http_retries: Annotated[int, typer.Option(help="Retries with backoff on 429/5xx and connection errors (openai).")] = 5,
    caption: Annotated[bool, typer.Option("--caption", help="Caption the real images that have no caption instead (build-data then uses the captions as prompts).")] = False,
    prompt_version: Annotated[str, typer.Option(help="Built-in prompt version.")] = "v1",
    prompt_file: Annotated[Optional[Path], typer.Option(help="Your own prompt (its version becomes file-<hash>).")] = None,
    min_confidence: Annotated[float, typer.Option(help="Purity: an inconsistency counts from this confidence on.")] = 0.5,
    min_inconsistencies: Annotated[int, typer.Option(help="Purity: counted inconsistencies a fake needs to enter the semantic set.")] = 1,
    quarantine_reals: Annotated[bool, typer.Option(" /--keep-inconsistent-reals", help="Purity: reals the annotator calls inconsistent are quarantined (default) or kept.")] = True,
    max_new_tokens: Annotated[int, typer.Option(help="Decoding: token limit per reply.")] = 512,
    temperature: Annotated[float, typer.Option(help="Decoding: 0 is greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Decoding: seed.")] = 0,
    constrained: Annotated[bool, typer.Option(" /--no-constrained", help="Schema-constrained JSON decoding (default on).")] = True,
    max_attempts: Annotated[int, typer.Option(help="Asks per image when a reply fails or does not parse.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Images per generate call.")] = 8,
    chunk_size: Annotated[int, typer.Option(help="Images per chunk (unit of resume and of work per actor).")] = 64,
    splits: Annotated[Optional[str], typer.Option(help="Comma-separated splits to label [default: all].")] = None,
    where: Annotated[Optional[str], typer.Option(help="Extra SQL condition on samples, e.g. \"generator = 'flux'\".")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Label at most this many samples.")] = None,
    dtype: Annotated[str, typer.Option(help="auto (float16 on GPU, float32 on CPU), bfloat16, float16, float32.")] = "auto",
    executor: Annotated[str, typer.Option(help="ray (default) or local.")] = "ray",
    ray_address: Annotated[Optional[str], typer.Option(help="Existing Ray cluster (else RAY_ADDRESS, else a local Ray).")] = None,
    workers: Annotated[int, typer.Option(help="CPUs for the local Ray (0 = all).")] = 0,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per annotator actor (default 1 when the cluster has GPUs).")] = -1.0,
) -> None:
    """Annotate semantic inconsistencies with a VLM; apply the purity rules; write labels and semantic-sft shards."""
    from labeling.cli import run_label_semantic

    run_label_semantic(fail, locals(), " ".join(["aig", *sys.argv[1:]]))


from training.command import train as _train  # noqa: E402  (typer options only; training imports lazily)

app.command("train")(_train)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
