"""The `aig` command line, the composition root: the only module that sees every folder.

Heavy libraries (torch, ray, pyarrow, PIL) are imported inside commands only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from typer.core import TyperGroup

from aig.manifests.errors import AigError
from aig.pipeline.cli_config import ConfigOpt
from aig.evaluation.options import AuditOptions, DetectorOptions, EvalOptions, ReportOptions
from aig.labeling.options import LabelOptions
from aig.pipeline.config import DEFAULT_OUTPUT, BuildConfig


class _Commands(TyperGroup):
    """The one place errors become messages: any project error (AigError) is one line on stderr, exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AigError as e:
            fail(str(e))


app = typer.Typer(cls=_Commands, add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Build, query and check datasets for AI-generated image detection.")

DatasetArg = Annotated[Path, typer.Option("--dataset", "-d", help="Dataset folder.")]
DatasetLocation = Annotated[str, typer.Option("--dataset", "-d", help="Dataset folder or URL (s3://bucket/prefix).")]
# info/verify/audit/report: the dataset positionally (as before) or with -d like every other command
DatasetPos = Annotated[Optional[str], typer.Argument(metavar="DATASET", show_default=False, help="Dataset folder or URL (or -d).")]
Executor = Literal["ray", "local"]
_B = BuildConfig()
_L = LabelOptions()
_D = DetectorOptions()  # evaluate and predict
_E = EvalOptions(dataset=Path(DEFAULT_OUTPUT))


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"aig {version('aig')}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                                help="Show the version and exit.")] = False) -> None:
    """Build, query and check datasets for AI-generated image detection."""


def pick_dataset(positional: Optional[str], option: str) -> str:
    """The dataset named positionally or with -d/--dataset; both at once must agree."""
    if positional is not None and option not in (positional, DEFAULT_OUTPUT):
        fail(f"dataset given twice ('{positional}' and -d '{option}'); give it once")
    return positional if positional is not None else option


def fail(msg: str, code: int = 2) -> None:
    from aig.pipeline.redact import redact_url

    typer.echo(f"error: {redact_url(msg)}", err=True)  # messages may quote a URL given with its credentials
    raise typer.Exit(code)


@app.command("build-data")
def build_data(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML file: its [build-data] table (examples/aig.toml); options below override it.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", show_default=DEFAULT_OUTPUT, help="Dataset folder or URL.")] = None,
    input_dir: Annotated[Optional[list[str]], typer.Option("--input-dir", help="Folder of images (recursive). Repeatable.")] = None,
    input_list: Annotated[Optional[list[str]], typer.Option("--input-list", help="CSV/TSV/Parquet/JSON(L) with a path or url column (+ caption, group), or a text file of paths/URLs (img2dataset input formats). Repeatable.")] = None,
    input_shards: Annotated[Optional[list[str]], typer.Option("--input-shards", help="WebDataset tars: paths, a folder, a glob or a brace pattern. Repeatable.")] = None,
    url_col: Annotated[Optional[str], typer.Option(help="Lists: column of image paths/URLs [default: url, path, image, file, filepath or filename].")] = None,
    caption_col: Annotated[Optional[str], typer.Option(show_default=_B.inputs.caption_col, help="Lists: caption column.")] = None,
    input_format: Annotated[Optional[Literal["txt", "csv", "tsv", "tsv.gz", "csv.gz", "json", "jsonl", "jsonl.gz", "parquet"]], typer.Option(help="Lists: format [default: from the extension].")] = None,
    disallowed_header_directives: Annotated[Optional[str], typer.Option(show_default=",".join(_B.ingest.download.disallowed_header_directives), help="URLs: comma-separated X-Robots-Tag directives that opt an image out (opted_out); '' ignores the header.")] = None,
    stages: Annotated[Optional[str], typer.Option(show_default=",".join(_B.stages), help="Comma-separated stages to run.")] = None,
    policy: Annotated[Optional[Literal["native", "cap", "center-crop"]], typer.Option(show_default=_B.ingest.policy, help="Canonicalisation: native (native pixels, centre-cropped to at most size x size, never resized), cap (downscaled to longest side <= size), center-crop (square resized to size).")] = None,
    size: Annotated[Optional[int], typer.Option(show_default="2048 for native, 512 for cap and center-crop", help="Pixels: native's maximum side, cap's maximum side or center-crop's side.")] = None,
    min_size: Annotated[Optional[int], typer.Option(show_default=str(_B.ingest.min_size), help="Reject images whose shorter side is below this.")] = None,
    max_pixels: Annotated[Optional[int], typer.Option(show_default=str(_B.ingest.max_pixels), help="Reject images with more pixels (decompression bombs).")] = None,
    image_format: Annotated[Optional[Literal["png", "jpeg"]], typer.Option(show_default=_B.ingest.image_format, help="Stored format: png (lossless) or jpeg.")] = None,
    jpeg_quality: Annotated[Optional[int], typer.Option(show_default=str(_B.ingest.jpeg_quality), help="Quality when --image-format jpeg.")] = None,
    near_dup: Annotated[Optional[Literal["group", "drop", "off"]], typer.Option(show_default=_B.ingest.near_dup, help="Near-duplicates (perceptual hash): group (same group, so same split), drop (failures, reason near_duplicate) or off.")] = None,
    samples_per_shard: Annotated[Optional[int], typer.Option(show_default=str(_B.shards.samples_per_shard), help="Inputs per chunk and max samples per tar.")] = None,
    max_shard_bytes: Annotated[Optional[int], typer.Option(show_default=str(_B.shards.max_shard_bytes), help="Max bytes per tar.")] = None,
    split_seed: Annotated[Optional[str], typer.Option(show_default=_B.split.seed, help="Seed of the hash that assigns splits.")] = None,
    split: Annotated[Optional[str], typer.Option(show_default="0.8,0.1,0.1", help="Split fractions 'TRAIN,VAL,TEST'.")] = None,
    autoencoder: Annotated[Optional[list[str]], typer.Option(help="Reconstruct stage: diffusers autoencoder, hub id or local path, optional ':SUBFOLDER' (e.g. stabilityai/stable-diffusion-2-1:vae). Repeatable [default: embedded].")] = None,
    latent: Annotated[Optional[Literal["sample", "mode"]], typer.Option(show_default=_B.reconstruct.latent, help="Reconstruct stage: sample (seeded per pair) or mode.")] = None,
    pair_format: Annotated[Optional[Literal["auto", "png", "jpeg-matched"]], typer.Option(show_default=_B.reconstruct.pair_format, help="Pixel pairs: auto (both as JPEG at the real's own quality for JPEG sources, else PNG; jpeg-matched is the same), or png (both lossless).")] = None,
    inpaint_model: Annotated[Optional[list[str]], typer.Option(help="Inpaint stage: diffusers inpainting pipeline, hub id or path. Repeatable.")] = None,
    inpaint_mask: Annotated[Optional[Literal["empty", "rectangle"]], typer.Option(show_default=_B.inpaint.mask, help="Inpaint stage: empty (regenerate all) or rectangle.")] = None,
    inpaint_steps: Annotated[Optional[int], typer.Option(show_default=str(_B.inpaint.steps), help="Inpaint stage: inference steps.")] = None,
    t2i_model: Annotated[Optional[list[str]], typer.Option(help="Generate stage: diffusers text-to-image pipeline, hub id or path. Repeatable.")] = None,
    t2i_steps: Annotated[Optional[int], typer.Option(show_default=str(_B.generate.steps), help="Generate stage: inference steps.")] = None,
    t2i_guidance: Annotated[Optional[float], typer.Option(show_default=str(_B.generate.guidance), help="Generate stage: guidance scale.")] = None,
    t2i_size: Annotated[Optional[int], typer.Option(show_default="the pipeline's native size", help="Generate stage: pixel area as a side (SIZE x SIZE).")] = None,
    t2i_aspect: Annotated[Optional[Literal["source", "fixed"]], typer.Option(show_default=_B.generate.aspect, help="Generate stage: source (each fake at its source real's aspect ratio) or fixed (SIZE x SIZE).")] = None,
    prompts: Annotated[Optional[list[str]], typer.Option(help="Generate stage: a text file of extra prompts, one a line. Repeatable.")] = None,
    images_per_prompt: Annotated[Optional[int], typer.Option(show_default=str(_B.generate.images_per_prompt), help="Generate stage: images per caption.")] = None,
    negative_prompt: Annotated[Optional[str], typer.Option(help="Generate stage: negative prompt.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Generate stage: diffusers scheduler class to use.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Model stages: images per batch.")] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="Model stages: GPUs per actor (fractions allowed; default 1 when the cluster has GPUs).")] = None,
    executor: Annotated[Optional[Executor], typer.Option(show_default=_B.runner.executor, help="ray, or local (in-process, for debugging).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Existing Ray cluster (else RAY_ADDRESS, else a local Ray).")] = None,
    workers: Annotated[Optional[int], typer.Option(show_default=str(_B.runner.workers), help="CPUs for the local Ray (0 = all).")] = None,
    max_retries: Annotated[Optional[int], typer.Option(show_default=str(_B.runner.max_retries), help="Retries of a failing sample or crashed task.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete the dataset and start fresh.")] = False,
) -> None:
    """Ingest real images into WebDataset shards with a Parquet/DuckDB manifest (resumable, appendable)."""
    from aig.pipeline.config import load_config

    overrides = {
        "output": output, "inputs.folders": input_dir, "inputs.lists": input_list, "inputs.shards": input_shards,
        "stages": stages.split(",") if stages else None, "ingest.policy": policy, "ingest.size": size,
        "ingest.min_size": min_size, "ingest.max_pixels": max_pixels, "ingest.image_format": image_format,
        "ingest.jpeg_quality": jpeg_quality, "ingest.near_dup": near_dup, "shards.samples_per_shard": samples_per_shard,
        "shards.max_shard_bytes": max_shard_bytes, "split.seed": split_seed, "runner.executor": executor,
        "runner.ray_address": ray_address, "runner.workers": workers, "runner.max_retries": max_retries,
        "runner.gpus_per_worker": gpus_per_worker, "reconstruct.autoencoders": autoencoder,
        "reconstruct.latent": latent, "reconstruct.pair_format": pair_format, "inpaint.pair_format": pair_format,
        "inpaint.pipelines": inpaint_model, "inpaint.mask": inpaint_mask, "inpaint.steps": inpaint_steps, "generate.pipelines": t2i_model,
        "generate.steps": t2i_steps, "generate.guidance": t2i_guidance, "generate.width": t2i_size,
        "generate.height": t2i_size, "generate.aspect": t2i_aspect, "generate.images_per_prompt": images_per_prompt, "generate.prompt_files": prompts,
        "generate.negative_prompt": negative_prompt, "generate.scheduler": scheduler,
        "reconstruct.batch_size": batch_size, "inpaint.batch_size": batch_size, "generate.batch_size": batch_size,
        "inputs.url_col": url_col, "inputs.caption_col": caption_col, "inputs.list_format": input_format,
        "ingest.download.disallowed_header_directives":
            None if disallowed_header_directives is None else [d for d in disallowed_header_directives.split(",") if d.strip()],
    }
    if split:
        try:
            fractions = [float(v) for v in split.split(",")]
        except ValueError:
            fractions = []
        if len(fractions) != 3:
            fail(f"--split takes three fractions 'TRAIN,VAL,TEST', got {split!r}")
        overrides.update(zip(("split.train", "split.val", "split.test"), fractions))
    cfg = load_config(config, overrides)
    if cfg.inputs.embedded and "ingest" in cfg.stages:
        typer.echo("note: no --input-dir/--input-list/--input-shards given: building the 12 bundled sample photos "
                   "(pipeline/assets/photos); give an input to build from your own images", err=True)
    from aig.pipeline.build import build
    from aig.pipeline.redact import command_line

    from . import stages  # noqa: F401  (registers the model stages)

    report = build(cfg, command=command_line(), overwrite=overwrite)
    typer.echo(f"dataset: {report.location or report.root.resolve()}")
    if report.recorded:
        typer.echo(f"run {report.run_id}{' (resumed)' if report.resumed else ''}: {report.seconds:.1f}s "
                   f"({report.ray_startup_s:.1f}s of it Ray start-up)")
    else:
        typer.echo(f"nothing to do: the dataset already holds what this command builds; no run recorded "
                   f"({report.seconds:.1f}s)")
    ingested = report.by_stage.get("ingest", (0, 0))
    typer.echo(f"  ingest: {report.inputs} inputs -> {ingested[0]} samples, {ingested[1]} failures")
    for stage, (n, f) in report.by_stage.items():
        if stage != "ingest":
            typer.echo(f"  {stage}: {n} samples, {f} failures")
    _print_summary(report.root)
    typer.echo(f"query it: aig sql -d {report.location or report.root} \"select split, count(*) from samples group by all\"")


def _print_summary(root: Path) -> None:
    from aig.pipeline.info import summary_lines

    _echo_lines(summary_lines(root))


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views samples, failures, runs, shards, semantic_labels, semantic_inconsistencies, captions.")],
    dataset: DatasetLocation = DEFAULT_OUTPUT,
    format: Annotated[Literal["table", "csv", "json", "parquet"], typer.Option("--format", "-f", help="Output format.")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", help="Write to this file (required for parquet).")] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown by the table format.")] = 100,
    config: ConfigOpt = None,
) -> None:
    """Run read-only SQL against a dataset's DuckDB catalog (reads only the dataset folder; writes nothing)."""
    from aig.manifests.export import SqlOptions, run_sql
    from aig.pipeline.storage import local_view

    try:
        run_sql(SqlOptions(query=query, dataset=local_view(dataset), format=format, output=output, max_rows=max_rows))
    except BrokenPipeError:  # e.g. `| head`: the reader left; nothing more to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@app.command()
def verify(dataset_pos: DatasetPos = None, dataset: DatasetLocation = DEFAULT_OUTPUT, config: ConfigOpt = None) -> None:
    """Check every manifest row against its tar member, and shards against done markers."""
    dataset = pick_dataset(dataset_pos, dataset)
    from aig.pipeline.verify import verify_dataset

    problems = verify_dataset(dataset)
    if problems:
        typer.echo(f"{dataset}: {len(problems)} problem(s)")
        for p in problems:
            typer.echo(f"  - {p}")
        raise typer.Exit(1)
    typer.echo(f"{dataset}: OK")


@app.command()
def info(dataset_pos: DatasetPos = None, dataset: DatasetLocation = DEFAULT_OUTPUT, config: ConfigOpt = None) -> None:
    """Counts by task, split, label and generator; failures by reason; size on disk."""
    dataset = pick_dataset(dataset_pos, dataset)
    from aig.pipeline.storage import dataset_files, is_url, local_view

    root = local_view(dataset)
    _print_summary(root)
    total, tars = dataset_files(dataset, root).total_bytes()
    typer.echo(f"size {'in storage' if is_url(dataset) else 'on disk'}: {total / 1e6:.1f} MB ({tars / 1e6:.1f} MB in tars)")


@app.command()
def regenerate(
    key: Annotated[str, typer.Argument(help="Key of a generated sample.")],
    dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the regenerated image here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Rebuild one generated sample from its manifest row and check it equals the stored one."""
    from aig.generators.regenerate import regenerate as run

    result = run(dataset, key)
    if output:
        output.write_bytes(result.data)
        typer.echo(f"wrote {output}")
    typer.echo(f"{key}: {'identical to' if result.identical else 'DIFFERENT from'} the stored sample "
               f"(sha256 {result.stored_sha256[:16]}...)")
    if not result.identical:
        raise typer.Exit(1)


# --- evaluation: each command builds its options, calls the library's run(options) and prints the report ---
PixelOpt = Annotated[Optional[str], typer.Option("--pixel", help="Pixel-branch checkpoint (aig train --branch pixel).")]
SemModelOpt = Annotated[Optional[str], typer.Option("--semantic-model", help="Semantic-branch VLM: hub id or path (base model).")]
SemAdapterOpt = Annotated[Optional[str], typer.Option("--semantic-adapter", help="LoRA adapter folder for the VLM (aig train --branch semantic).")]
TauOpt = Annotated[str, typer.Option("--tau", help="Pixel threshold: fake if P(fake) > tau; 'calibrated' = the checkpoint's own.")]
FusionOpt = Annotated[Literal["or", "mean"], typer.Option("--fusion", help="or (fake if pixel > tau OR the VLM says fake) or mean (score-level).")]
WeightOpt = Annotated[float, typer.Option("--weight", help="mean fusion: weight of the pixel score.")]
ConstrainedOpt = Annotated[bool, typer.Option("--constrained", help="Decode VLM answers under their JSON schema (llguidance; compact JSON), e.g. for an untrained VLM.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads for inference [default: half the cores, at most 4].")]


@app.command()
def evaluate(
    dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    split: Annotated[str, typer.Option(help="Dataset split to score, or none (benchmarks only).")] = _E.split,
    benchmark: Annotated[Optional[list[str]], typer.Option("--benchmark", "-b", help="[NAME=]folder (0_real/1_fake, real/fake, nature/ai) or CSV/Parquet path,label[,generator]. Repeatable.")] = None,
    pixel: PixelOpt = None, semantic_model: SemModelOpt = None, semantic_adapter: SemAdapterOpt = None,
    tau: TauOpt = str(_D.tau), fusion: FusionOpt = _D.fusion, weight: WeightOpt = _D.weight,
    sweep: Annotated[bool, typer.Option("--sweep", help="Robustness sweep: JPEG 95/75/50, resize 0.5x/2x, centre crop 0.75.")] = False,
    perturb: Annotated[Optional[list[str]], typer.Option("--perturb", help="Extra post-processing: jpegQ, resizeF, cropF. Repeatable.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per pixel batch (VLM: a quarter).")] = _E.batch_size,
    max_new_tokens: Annotated[int, typer.Option(help="VLM answer length limit.")] = _D.max_new_tokens,
    threads: ThreadsOpt = _D.threads, constrained: ConstrainedOpt = _D.constrained, config: ConfigOpt = None,
) -> None:
    """Score a dataset's test split and/or benchmarks: each branch, fused; tables, plots, Parquet in the catalog."""
    from aig.evaluation.evaluate import run
    from aig.evaluation.options import parse_tau, perturbations
    from aig.pipeline.redact import command_line

    options = EvalOptions(dataset=dataset, split=None if split == "none" else split, benchmarks=benchmark or [],
                          pixel=pixel, semantic_model=semantic_model, semantic_adapter=semantic_adapter,
                          tau=parse_tau(tau), fusion=fusion, weight=weight, perturbations=perturbations(sweep, perturb or []),
                          batch_size=batch_size, max_new_tokens=max_new_tokens, threads=threads, constrained=constrained)
    report = run(options, command=command_line(), log=lambda m: typer.echo(m, err=True))
    _echo_lines(report.lines())
    if report.unreadable:
        typer.echo(f"warning: {len(report.unreadable)} unreadable image(s) excluded from the metrics (listed above)", err=True)


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Images or folders.")],
    pixel: PixelOpt = None, semantic_model: SemModelOpt = None, semantic_adapter: SemAdapterOpt = None,
    tau: TauOpt = str(_D.tau), fusion: FusionOpt = _D.fusion, weight: WeightOpt = _D.weight,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="VLM answer length limit.")] = _D.max_new_tokens,
    threads: ThreadsOpt = _D.threads, constrained: ConstrainedOpt = _D.constrained, config: ConfigOpt = None,
) -> None:
    """Per image: verdict, both branch scores, which branch fired, the VLM's named inconsistencies."""
    from aig.evaluation.options import PredictOptions, parse_tau
    from aig.evaluation.predict import run

    report = run(PredictOptions(paths=paths, pixel=pixel, semantic_model=semantic_model, semantic_adapter=semantic_adapter,
                                tau=parse_tau(tau), fusion=fusion, weight=weight, max_new_tokens=max_new_tokens,
                                threads=threads, constrained=constrained))
    _echo_lines([report.to_json()] if json_out else report.lines())
    if report.unreadable:
        fail(f"{report.unreadable} of {len(report.results)} image(s) could not be read", code=1)


@app.command()
def audit(
    dataset_pos: DatasetPos = None, dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    threshold: Annotated[float, typer.Option(help="Flag an attribute whose one-feature AUROC exceeds this.")] = AuditOptions.threshold,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a shortcut or a degenerate generator is found.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Shortcut audit: format, JPEG quality, size, aspect, EXIF, file size, mode per split and class."""
    from aig.evaluation.audit import run

    dataset = Path(pick_dataset(dataset_pos, str(dataset)))
    result = run(AuditOptions(dataset=dataset, threshold=threshold))
    _echo_lines([result.to_json()] if json_out else result.lines())
    if result.unreadable:
        fail(f"{len(result.unreadable)} sample(s) could not be read: run `aig verify {dataset}`", code=1)
    if strict and result.flagged:
        raise typer.Exit(1)


@app.command()
def report(
    dataset_pos: DatasetPos = None, dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file [default: DATASET/report.html].")] = None,
    pairs: Annotated[int, typer.Option(help="Pixel pairs in the gallery.")] = ReportOptions.pairs,
    threshold: Annotated[float, typer.Option(help="Audit threshold.")] = ReportOptions.threshold,
    config: ConfigOpt = None,
) -> None:
    """One static HTML page: counts, provenance, pair gallery, semantic fakes, audit, evaluation."""
    from aig.evaluation.report import run

    _echo_lines(run(ReportOptions(dataset=Path(pick_dataset(dataset_pos, str(dataset))), output=output, pairs=pairs,
                                  threshold=threshold)).lines())


@app.command("label-semantic")
def label_semantic(
    ctx: typer.Context,
    dataset: DatasetArg = Path(DEFAULT_OUTPUT),
    model: Annotated[Optional[str], typer.Option(help="The annotator VLM: hub id or local path (transformers), or the served model name (openai).")] = _L.model,
    backend: Annotated[Literal["transformers", "openai"], typer.Option(help="transformers (a local chat VLM) or openai (an OpenAI-compatible endpoint).")] = _L.backend,
    revision: Annotated[Optional[str], typer.Option(help="Model revision (transformers).")] = _L.revision,
    base_url: Annotated[Optional[str], typer.Option(envvar="OPENAI_BASE_URL", help="Endpoint, e.g. http://localhost:8000/v1 (openai).")] = _L.base_url,
    api_key: Annotated[Optional[str], typer.Option(envvar="OPENAI_API_KEY", help="API key (openai); read from OPENAI_API_KEY.", show_default=False)] = _L.api_key,
    concurrency: Annotated[int, typer.Option(help="Requests in flight (openai).")] = _L.concurrency,
    timeout: Annotated[float, typer.Option(help="Seconds for one whole request, reply included (openai).")] = _L.timeout,
    http_retries: Annotated[int, typer.Option(help="Retries with backoff on 429/5xx and connection errors (openai).")] = _L.http_retries,
    max_response_bytes: Annotated[int, typer.Option(help="Largest reply accepted (openai); a bigger body is cut off and counts as a failed request.")] = _L.max_response_bytes,
    max_failed_fraction: Annotated[float, typer.Option(help="Exit 1 when more than this fraction of the candidates got no usable answer (request failed or invalid), or all did.")] = _L.max_failed_fraction,
    caption: Annotated[bool, typer.Option("--caption", help="Caption the real images that have no caption instead (build-data then uses the captions as prompts).")] = _L.caption,
    prompt_version: Annotated[str, typer.Option(help="Built-in prompt version.")] = _L.prompt_version,
    prompt_file: Annotated[Optional[Path], typer.Option(help="Your own prompt (its version becomes file-<hash>).")] = _L.prompt_file,
    min_confidence: Annotated[float, typer.Option(help="Purity: an inconsistency counts from this confidence on.")] = _L.min_confidence,
    min_inconsistencies: Annotated[int, typer.Option(help="Purity: counted inconsistencies a fake needs to enter the semantic set.")] = _L.min_inconsistencies,
    quarantine_reals: Annotated[bool, typer.Option(" /--keep-inconsistent-reals", help="Purity: reals the annotator calls inconsistent are quarantined (default) or kept.")] = _L.quarantine_reals,
    max_new_tokens: Annotated[int, typer.Option(help="Decoding: token limit per reply.")] = _L.max_new_tokens,
    temperature: Annotated[float, typer.Option(help="Decoding: 0 is greedy.")] = _L.temperature,
    seed: Annotated[int, typer.Option(help="Decoding: seed.")] = _L.seed,
    constrained: Annotated[bool, typer.Option(" /--no-constrained", help="Schema-constrained JSON decoding (default on).")] = _L.constrained,
    max_attempts: Annotated[int, typer.Option(help="Asks per image when a reply fails or does not parse.")] = _L.max_attempts,
    batch_size: Annotated[int, typer.Option(help="Images per generate call.")] = _L.batch_size,
    chunk_size: Annotated[int, typer.Option(help="Images per chunk (unit of resume and of work per actor).")] = _L.chunk_size,
    splits: Annotated[Optional[str], typer.Option(help="Comma-separated splits to label [default: all].")] = _L.splits,
    where: Annotated[Optional[str], typer.Option(help="Extra SQL condition on samples, e.g. \"generator = 'flux'\".")] = _L.where,
    limit: Annotated[Optional[int], typer.Option(help="Label at most this many samples.")] = _L.limit,
    dtype: Annotated[Literal["auto", "bfloat16", "float16", "float32"], typer.Option(help="auto (float16 on GPU, float32 on CPU), bfloat16, float16, float32.")] = _L.dtype,
    executor: Annotated[Executor, typer.Option(help="ray, or local (in-process).")] = _L.executor,
    ray_address: Annotated[Optional[str], typer.Option(help="Existing Ray cluster (else RAY_ADDRESS, else a local Ray).")] = _L.ray_address,
    workers: Annotated[int, typer.Option(help="CPUs for the local Ray (0 = all).")] = _L.workers,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per annotator actor (default 1 when the cluster has GPUs).")] = _L.gpus_per_worker,
    config: ConfigOpt = None,
) -> None:
    """Annotate semantic inconsistencies with a VLM; apply the purity rules; write labels and semantic-sft shards."""
    from aig.labeling.command import run
    from aig.pipeline.redact import command_line

    options = LabelOptions(**{name: value for name, value in ctx.params.items() if name != "config"})
    outcome = run(options, command=command_line())
    _echo_lines(outcome.lines())
    if outcome.problem:
        fail(outcome.problem, code=1)


from aig.training.command import train as _train  # noqa: E402  (typer options only; training imports lazily)

app.command("train")(_train)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
