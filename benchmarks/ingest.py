#!/usr/bin/env python
"""Ingest benchmark: `aig build-data` (Ray, 1 and 2 workers) against a plain single-process loop.

Generates N distinct natural-looking 512 px JPEGs (cached by seed under --workdir), then times, each in a
fresh subprocess (so Ray starts fresh and memory is measured per run):

* plain loop  - one process: for each file in sorted order read bytes, decode with Pillow, convert RGB,
                centre-crop + LANCZOS resize to 256 px, PNG encode (aig's PNG level, aig.pipeline.decode.PNG_LEVEL), append to a tar
                (a new tar every 100 images, like aig's 100-sample chunks);
* aig, Ray    - `aig.pipeline.build.build` with the same policy/size/format, runner.workers = 1 and 2; its time is
                report.seconds - report.ray_startup_s (Ray start-up is reported separately; everything
                else - planning/hashing, manifests, catalog, Ray shutdown - is counted);
* aig, local  - (informational, --with-local) the same build on the in-process executor: aig's own
                overhead without Ray;
* ceiling     - (informational, --with-ceiling) 2 plain loops at once, each on half the images: what
                2 CPUs of this machine can give at best.

* references  - (first, unless --skip-references; --references-only for just these) the JPEG work (256 px
                centre crop to JPEG q95): whole-command wall time of `aig build-data` (Ray start-up included)
                against img2dataset 1.47 (own virtualenv, created with pip if missing; 2 processes), and
                marginal CPU per image (CPU at N minus CPU at N/10, over the images between) of aig's
                in-process executor, with the JPEG work and with aig's defaults, against an OpenCV loop
                (imdecode, crop, INTER_AREA, imencode, tar). Written to its own RESULTS.md section.

Timed configurations are interleaved (plain, aig-1, aig-2, plain, ...) and the best of --repeats is kept.
Peak memory is the RSS of the run's whole process tree (the subprocess and all descendants: Ray's gcs,
raylet, workers...), sampled every 0.1 s, plus the driver process alone; the memory runs use 2 workers at
1,000 and 4,000 images and the 4,000/1,000 ratio must stay ~1.

    python benchmarks/ingest.py                       # full benchmark (~8-10 min on 2 CPUs)
    python benchmarks/ingest.py --write-results --with-ceiling   # ... and rewrite the generated part of
                                                      # RESULTS.md (~9.5 min on 2 CPUs)
    python benchmarks/ingest.py --n 200 --repeats 1 --skip-memory    # quick smoke run
    python benchmarks/ingest.py --profile --n 500     # cProfile of the local executor, by phase

Targets (issue): aig >= 0.9x the plain loop with 1 CPU, >= 1.7x with 2 CPUs; flat peak memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from results import RESULTS, machine_facts, run_header, write_section  # benchmarks/results.py (on sys.path)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

PACKAGES = ("aig", "ray", "pillow", "numpy", "pyarrow", "duckdb", "psutil")  # versions listed in RESULTS.md
SIZE = 256
SRC = 512
PER_SHARD = 100
SEED = 1234
TARGET_1, TARGET_2 = 0.9, 1.7
MEMORY_NS = (1000, 4000)
# img2dataset's own virtualenv (it pins other versions of shared libraries): created with pip if missing
I2D_VENV = Path(os.environ.get("AIG_IMG2DATASET_VENV") or ("/work/venvs/img2dataset" if Path("/work/venvs").is_dir()
                else Path.home() / ".cache" / "aig" / "img2dataset-venv"))
I2D_VERSION = "1.47.0"
TARGET_WALL, TARGET_CPU, TARGET_DEFAULTS = 1.0, 1.10, 2.0  # vs img2dataset wall; vs OpenCV marginal CPU/image

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------------------------------------
# Test images: a cached pool, generated per index (so it can grow), hard-linked into one folder per N
# ------------------------------------------------------------------------------------------------

def _make_image(i: int, fields, noise):
    import numpy as np
    from PIL import ImageChops, ImageDraw

    rng = np.random.default_rng((SEED, i))
    field = fields[int(rng.integers(len(fields)))]
    pad = field.width - SRC
    fx, fy, nx, ny = (int(v) for v in rng.integers(0, pad, 4))
    img = field.crop((fx, fy, fx + SRC, fy + SRC))
    gain = rng.uniform(0.45, 0.9, 3)
    offset = rng.uniform(0.0, 1.0, 3) * (235.0 - 255.0 * gain)
    ramp = np.arange(256, dtype=np.float64)
    img = img.point(np.rint(ramp[None, :] * gain[:, None] + offset[:, None]).astype(np.uint8).ravel().tolist())
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):  # a few hard-edged objects on the smooth background
        x0, y0 = (int(v) for v in rng.integers(-64, SRC - 32, 2))
        w, h = (int(v) for v in rng.integers(24, 220, 2))
        colour = tuple(int(v) for v in rng.integers(0, 235, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x0 + w, y0 + h), fill=colour)
    return ImageChops.add(img, noise.crop((nx, ny, nx + SRC, ny + SRC)))  # sensor-like grain, never wraps


def ensure_images(workdir: Path, n: int) -> Path:
    """workdir/images-N holding img_000000.jpg.. (hard links into workdir/pool); reused across runs."""
    import numpy as np
    from PIL import Image

    pool, folder = workdir / f"pool-{SEED}", workdir / f"images-{n}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == n:
        return folder
    pool.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(n) if not (pool / f"img_{i:06d}.jpg").is_file()]
    if missing:
        t0 = time.perf_counter()
        rng = np.random.default_rng(SEED)
        side = SRC + 128
        fields = [Image.fromarray(rng.integers(0, 256, (k, k, 3), dtype=np.uint8)).resize(
                  (side, side), Image.Resampling.BICUBIC) for k in (5, 7, 9, 12, 16, 6, 10, 14)]
        noise = Image.fromarray(rng.integers(0, 21, (side, side, 3), dtype=np.uint8))
        for i in missing:
            buf = io.BytesIO()
            _make_image(i, fields, noise).save(buf, format="JPEG", quality=90)
            tmp = pool / f".img_{i:06d}.jpg.tmp"
            tmp.write_bytes(buf.getvalue())
            tmp.replace(pool / f"img_{i:06d}.jpg")
        print(f"generated {len(missing)} {SRC} px JPEGs in {time.perf_counter() - t0:.1f}s under {pool}",
              flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(n):
        src, dst = pool / f"img_{i:06d}.jpg", folder / f"img_{i:06d}.jpg"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return folder


# ------------------------------------------------------------------------------------------------
# One measured run (executed in a child process)
# ------------------------------------------------------------------------------------------------

def tar_loop(images: Path | list[Path], out: Path, encode, ext: str) -> dict:
    """encode(path) -> bytes for each file, `PER_SHARD` members per tar, one process, no aig code (timed from
    listing the files)."""
    t0 = time.perf_counter()
    files = sorted(p for p in images.iterdir() if p.is_file()) if isinstance(images, Path) else images
    out.mkdir(parents=True, exist_ok=True)
    tf = None
    for i, path in enumerate(files):
        if i % PER_SHARD == 0:
            if tf is not None:
                tf.close()
            tf = tarfile.open(out / f"shard-{i // PER_SHARD:06d}.tar", "w", format=tarfile.USTAR_FORMAT)
        data = encode(path)
        info = tarfile.TarInfo(f"{path.stem}.{ext}")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    if tf is not None:
        tf.close()
    return {"seconds": time.perf_counter() - t0, "ray_startup_s": 0.0, "samples": len(files), "failures": 0,
            "phases": {}}


def plain_loop(images: Path | list[Path], out: Path) -> dict:
    """The reference: decode -> centre crop + resize -> PNG encode -> tar append, one process, no aig code."""
    from PIL import Image

    from aig.pipeline.decode import PNG_LEVEL  # the same zlib level as aig (a constant, not aig's code path)

    def encode(path: Path) -> bytes:
        img = Image.open(io.BytesIO(path.read_bytes()))
        img = img.convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        img = img.resize((SIZE, SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=PNG_LEVEL)
        return buf.getvalue()

    return tar_loop(images, out, encode, "png")


PHASES = ("plan (enumerate, hash, plan + run rows; Ray starts meanwhile)", "  of which: sha256 of inputs",
          "chunks (from executor ready)", "  first wave of chunks: executor ready -> done",
          "  later waves: seconds per wave (median)", "  => first-wave warm-up (first - later)",
          "  last chunk done -> chunks returned", "Ray shutdown", "runs table", "info.json", "DuckDB catalog")


def driver_phases(report, workers: int) -> dict[str, float]:
    """aig's driver-side phases from the build report's timers (the chunk driver's and the build's own)."""
    build, stage = report.timers["build"].seconds, report.timers.get("ingest")
    phases = {PHASES[0]: build.get("plan", 0.0), PHASES[1]: build.get("hash inputs", 0.0),
              PHASES[7]: build.get("close executor", 0.0), PHASES[8]: build.get("runs table", 0.0),
              PHASES[9]: build.get("info.json", 0.0), PHASES[10]: build.get("catalog", 0.0)}
    if stage is None or not stage.done_at:
        return phases
    done, chunks = stage.done_at, stage.seconds["chunks"]
    k = max(1, min(workers, len(done)))  # a "wave" is `workers` chunks finishing
    phases[PHASES[2]] = chunks
    phases[PHASES[3]] = done[k - 1]
    waves = [done[i + k - 1] - done[i - 1] for i in range(k, len(done) - k + 1, k)]
    if waves:
        later = sorted(waves)[len(waves) // 2]
        phases[PHASES[4]] = later
        phases[PHASES[5]] = done[k - 1] - later
    phases[PHASES[6]] = chunks - done[-1]
    return phases


SETTINGS = {  # ingest settings of the aig runs
    "png": {"ingest.policy": "center-crop", "ingest.size": SIZE, "ingest.image_format": "png"},
    # the references' work: no near-duplicate grouping (neither img2dataset nor the OpenCV loop hashes images)
    "jpeg": {"ingest.policy": "center-crop", "ingest.size": SIZE, "ingest.image_format": "jpeg",
             "ingest.jpeg_quality": 95, "ingest.near_dup": "off"},
    "jpeg-neardup": {"ingest.policy": "center-crop", "ingest.size": SIZE, "ingest.image_format": "jpeg",
                     "ingest.jpeg_quality": 95},  # with the default near-duplicate grouping
    "defaults": {},  # the project's defaults
}


def aig_run(images: Path, out: Path, workers: int, executor: str, settings: str = "png") -> dict:
    from aig.pipeline.build import build
    from aig.pipeline.config import load_config

    # Start from an empty folder, outside the timed region (overwrite=True would time the deletion).
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(None, {"output": str(out), "inputs.folders": [str(images)], **SETTINGS[settings],
                             "shards.samples_per_shard": PER_SHARD, "runner.workers": workers,
                             "runner.executor": executor, "stages": ["ingest"]})
    report = build(cfg, command="benchmarks/ingest.py")
    return {"seconds": report.seconds - report.ray_startup_s, "ray_startup_s": report.ray_startup_s,
            "total_s": report.seconds, "samples": report.samples, "failures": report.failures,
            "phases": driver_phases(report, workers)}


def opencv_loop(images: Path | list[Path], out: Path) -> dict:
    """The JPEG reference: OpenCV decode -> centre crop -> INTER_AREA resize -> JPEG q95 (4:4:4, as aig stores
    q >= 90) -> tar append, one process, no aig code."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]

    def encode(path: Path) -> bytes:
        img = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img = cv2.resize(img[top:top + side, left:left + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        return cv2.imencode(".jpg", img, params)[1].tobytes()

    return tar_loop(images, out, encode, "jpg")


def plain_parallel(images: Path, out: Path, processes: int) -> dict:
    """The machine's ceiling: `processes` plain loops at once, each on its share of the files."""
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(p for p in images.iterdir() if p.is_file())
    t0 = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        parts = list(pool.map(plain_loop, [files[i::processes] for i in range(processes)],
                              [out / f"part-{i}" for i in range(processes)]))
    return {"seconds": time.perf_counter() - t0, "ray_startup_s": 0.0, "samples": sum(p["samples"] for p in parts),
            "failures": 0, "phases": {}}


def one_run(args) -> None:
    images, out = Path(args.images), Path(args.out)
    if args.one_run == "plain":
        shutil.rmtree(out, ignore_errors=True)
        res = plain_loop(images, out)
    elif args.one_run == "opencv":
        shutil.rmtree(out, ignore_errors=True)
        res = opencv_loop(images, out)
    elif args.one_run == "plain-parallel":
        shutil.rmtree(out, ignore_errors=True)
        res = plain_parallel(images, out, args.workers)
    else:
        res = aig_run(images, out, args.workers, args.one_run.removeprefix("aig-"), args.settings)
    Path(args.result).write_text(json.dumps(res))


# ------------------------------------------------------------------------------------------------
# Parent: launch a child, sample its process tree's memory
# ------------------------------------------------------------------------------------------------

ROLES = (  # first match on the command line wins
    ("DashboardAgent", "Ray dashboard agent"), ("dashboard/agent", "Ray dashboard agent"),
    ("RuntimeEnvAgent", "Ray runtime-env agent"), ("runtime_env/agent", "Ray runtime-env agent"),
    ("default_worker", "Ray workers"), ("ray::", "Ray workers"), ("gcs_server", "Ray gcs_server"),
    ("raylet", "Ray raylet"), ("log_monitor", "Ray log monitor"), ("autoscaler", "Ray autoscaler monitor"),
    ("dashboard.py", "Ray dashboard"),
)


def _role(p, driver_pid: int) -> str:
    if p.pid == driver_pid:
        return "driver (build process)"
    try:
        cmd = " ".join(p.cmdline()[:3]) or p.name()  # program + script only: raylet's flags name the agents
    except Exception:
        return "other child processes"
    return next((role for needle, role in ROLES if needle in cmd), "other child processes")


def watch(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run cmd; sample its process tree's RSS and CPU time every 0.1 s. cpu_total_s is exact for reaped
    descendants (getrusage of children) and never below the sampled sum."""
    import resource

    import psutil

    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1", **(env or {}))
    peak_tree = peak_driver = peak_procs = 0
    roles: dict[int, str] = {}
    cpu: dict[int, float] = {}  # pid -> last seen user + system CPU seconds
    me = psutil.Process()
    own0 = sum(me.cpu_times()[:2])
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as logf:
        proc = psutil.Popen(cmd, cwd=REPO, env=env, stdout=logf, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            total, procs = 0, 0
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                tree = [proc]
            for p in tree:
                try:
                    with p.oneshot():
                        rss = p.memory_info().rss
                        times = p.cpu_times()
                    if p.pid not in roles:
                        roles[p.pid] = _role(p, proc.pid)
                except psutil.Error:
                    continue
                cpu[p.pid] = times.user + times.system
                total += rss
                procs += 1
                if p.pid == proc.pid:
                    peak_driver = max(peak_driver, rss)
            if total > peak_tree:
                peak_tree, peak_procs = total, procs
            time.sleep(0.1)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    by_role: dict[str, float] = {}
    for pid, sec in cpu.items():
        by_role[roles[pid]] = by_role.get(roles[pid], 0.0) + sec
    reaped = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    by_role["(this monitor, not counted above)"] = sum(me.cpu_times()[:2]) - own0
    return {"returncode": proc.returncode, "wall_s": wall, "peak_tree_mb": peak_tree / 2**20,
            "peak_driver_mb": peak_driver / 2**20, "peak_procs": peak_procs, "cpu_s": by_role,
            "cpu_total_s": max(reaped, sum(cpu.values()))}


def measure(mode: str, images: Path, out: Path, workers: int, n: int, workdir: Path, settings: str = "png") -> dict:
    """Run one configuration in a child process (`--one-run`), watched by `watch`."""
    result = workdir / "result.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one-run", mode, "--images", str(images),
           "--out", str(out), "--workers", str(workers), "--result", str(result), "--settings", settings]
    log = workdir / "child.log"
    w = watch(cmd, log)
    if w["returncode"] != 0 or not result.is_file():
        sys.exit(f"{mode} (workers={workers}, n={n}) failed with exit code {w['returncode']}; "
                 f"its output:\n{log.read_text()[-4000:]}")
    res = json.loads(result.read_text())
    if res["samples"] != n or res["failures"]:
        sys.exit(f"{mode}: expected {n} samples and no failures, got {res['samples']} / {res['failures']}")
    w.pop("returncode")
    res.update(mode=mode, workers=workers, n=n, settings=settings, **w)
    return res


def label(r: dict) -> str:
    if r["mode"] == "plain":
        return "plain loop (1 process)"
    if r["mode"] == "plain-parallel":
        return f"{r['workers']} plain loops at once (machine ceiling)"
    return f"aig, {r['mode'].removeprefix('aig-')} executor, {r['workers']} worker{'s' if r['workers'] > 1 else ''}"


# ------------------------------------------------------------------------------------------------
# References: img2dataset (whole command) and the OpenCV loop (marginal CPU per image)
# ------------------------------------------------------------------------------------------------

def ensure_img2dataset(venv: Path) -> Path | str:
    """The img2dataset console script in its own virtualenv (created with pip if missing), or why not."""
    exe = venv / "bin" / "img2dataset"
    if exe.is_file():
        return exe
    print(f"creating {venv} with img2dataset=={I2D_VERSION} (pip, once)", flush=True)
    proc = subprocess.run("python3 -m venv "
                          f"{shlex.quote(str(venv))} && {shlex.quote(str(venv / 'bin' / 'pip'))} install -q "
                          f"img2dataset=={I2D_VERSION}", shell=True, capture_output=True, text=True)
    if proc.returncode != 0 or not exe.is_file():
        return f"img2dataset {I2D_VERSION} could not be installed with pip: {proc.stderr.strip()[-300:]}"
    return exe


def img2dataset_run(exe: Path, images: Path, out: Path, n: int, workdir: Path) -> dict:
    """img2dataset on file:// URLs: 256 px centre crop, JPEG q95 WebDataset shards of 100, 2 processes."""
    urls = workdir / f"urls-{n}.txt"
    urls.write_text("".join(f"file://{p}\n" for p in sorted(images.glob("*.jpg"))))
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(exe), "--url_list", str(urls), "--input_format", "txt", "--output_format", "webdataset",
           "--output_folder", str(out), "--image_size", str(SIZE), "--resize_mode", "center_crop",
           "--encode_format", "jpg", "--encode_quality", "95", "--processes_count", "2", "--thread_count", "2",
           "--number_sample_per_shard", str(PER_SHARD), "--enable_wandb", "False", "--compute_hash", "sha256"]
    w = watch(cmd, workdir / "img2dataset.log", {"NO_ALBUMENTATIONS_UPDATE": "1"})
    ok = sum(json.loads(f.read_text()).get("successes", 0) for f in out.glob("*_stats.json"))
    if w["returncode"] != 0 or ok != n:
        sys.exit(f"img2dataset: exit {w['returncode']}, {ok} of {n} images; log: {workdir / 'img2dataset.log'}")
    return {**w, "n": n}


def aig_cli_run(images: Path, out: Path, n: int, workdir: Path, workers: int = 2) -> dict:
    """`aig build-data` as a user runs it (Ray start-up included): 256 px centre crop to JPEG q95, 2 workers,
    no near-duplicate grouping (img2dataset does none)."""
    shutil.rmtree(out, ignore_errors=True)
    aig = Path(sys.executable).with_name("aig")
    cmd = [str(aig), "build-data", "-o", str(out), "--input-dir", str(images), "--stages", "ingest",
           "--policy", "center-crop", "--size", str(SIZE), "--image-format", "jpeg", "--jpeg-quality", "95",
           "--near-dup", "off", "--samples-per-shard", str(PER_SHARD), "--workers", str(workers)]
    w = watch(cmd, workdir / "aig-cli.log", {"PYTHONPATH": str(REPO)})
    if w["returncode"] != 0:
        sys.exit(f"aig build-data failed; log: {workdir / 'aig-cli.log'}")
    return {**w, "n": n}


def references(args, workdir: Path) -> dict:
    """Whole-command wall time vs img2dataset, and marginal CPU per image (N minus N/10) vs the OpenCV loop."""
    n, small = args.n, max(1, args.n // 10)
    big_images, small_images = ensure_images(workdir, n), ensure_images(workdir, small)
    exe = ensure_img2dataset(Path(args.img2dataset_venv))
    out: dict = {"n": n, "small": small, "load_before": os.getloadavg()[0], "wall": {}, "cpu": {}, "runs": [],
                 "paired": {}}
    if isinstance(exe, str):
        out["img2dataset_error"] = exe
        print(exe, flush=True)
    for rep in range(args.repeats):
        if not isinstance(exe, str):
            r = img2dataset_run(exe, big_images, workdir / "out-img2dataset", n, workdir)
            out["runs"].append(("img2dataset", r["wall_s"], r["cpu_total_s"]))
            print(f"img2dataset {I2D_VERSION}, 2 processes: {r['wall_s']:.2f}s wall, {r['cpu_total_s']:.1f} CPU s",
                  flush=True)
            out["wall"]["img2dataset"] = min(out["wall"].get("img2dataset", 1e9), r["wall_s"])
        r = aig_cli_run(big_images, workdir / "out-aig-cli", n, workdir)
        out["runs"].append(("aig", r["wall_s"], r["cpu_total_s"]))
        print(f"aig build-data, Ray 2 workers: {r['wall_s']:.2f}s wall, {r['cpu_total_s']:.1f} CPU s", flush=True)
        out["wall"]["aig"] = min(out["wall"].get("aig", 1e9), r["wall_s"])
        for key, mode, settings in (("opencv", "opencv", "jpeg"), ("aig-jpeg", "aig-local", "jpeg"),
                                    ("aig-jpeg-neardup", "aig-local", "jpeg-neardup"),
                                    ("aig-defaults", "aig-local", "defaults")):
            cpu = []
            for count, folder in ((n, big_images), (small, small_images)):
                m = measure(mode, folder, workdir / f"out-ref-{key}", 1, count, workdir, settings)
                cpu.append(m["cpu_total_s"])
            marginal = (cpu[0] - cpu[1]) / (n - small)
            print(f"{key}: CPU {cpu[0]:.1f}s at {n}, {cpu[1]:.1f}s at {small}: {1000 * marginal:.2f} ms/image",
                  flush=True)
            out["cpu"][key] = min(out["cpu"].get(key, 1e9), marginal)
            if key == "opencv":
                opencv_now = marginal
            else:  # against the OpenCV loop of the same repeat, measured just before
                out["paired"].setdefault(key, []).append(marginal / opencv_now)
            out["runs"].append((f"{key} marginal", None, marginal))
    out["load_after"] = os.getloadavg()[0]
    return out


def render_references(ref: dict, args, started: str) -> str:
    wall, cpu = ref["wall"], ref["cpu"]
    lines = [f"Run {started} UTC: `python benchmarks/ingest.py {' '.join(args.argv)}`; load average (1 min) "
             f"before / after: {ref['load_before']:.2f} / {ref['load_after']:.2f}.", ""]
    lines += [f"- {fact}" for fact in machine_facts(PACKAGES)]
    lines += ["", f"{ref['n']} generated {SRC} px JPEGs. **JPEG work**: {SIZE} px centre crop to JPEG q95, "
              f"{PER_SHARD} per tar. Best of {args.repeats}.", "",
              "| whole command (JPEG work, 2 processes, start-up included) | seconds | aig vs it | target |",
              "|---|---:|---:|---|"]
    if "img2dataset" in wall:
        ratio = wall["aig"] / wall["img2dataset"]
        lines.append(f"| img2dataset {I2D_VERSION} (file:// URLs, 2 processes x 2 threads) | "
                     f"{wall['img2dataset']:.2f} | | |")
        lines.append(f"| `aig build-data` (Ray, 2 workers) | {wall['aig']:.2f} | **{ratio:.2f}x** | "
                     f"<= {TARGET_WALL}x: {'met' if ratio <= TARGET_WALL else '**missed**'} |")
    else:
        lines.append(f"| img2dataset: not measured ({ref.get('img2dataset_error', '?')}) | | | |")
        lines.append(f"| `aig build-data` (Ray, 2 workers) | {wall['aig']:.2f} | | |")
    ref_ms = 1000 * cpu["opencv"]
    lines += ["", f"Marginal CPU per image (process tree, user + system; CPU at {ref['n']} images minus CPU at "
              f"{ref['small']}, over the {ref['n'] - ref['small']} images between; in-process executor):", "",
              "| loop | ms CPU / image | vs OpenCV loop | target | vs the same repeat's OpenCV loop (median) |",
              "|---|---:|---:|---|---|",
              f"| OpenCV loop (imdecode, crop, INTER_AREA, imencode q95 4:4:4, tar) | {ref_ms:.2f} | 1.00x | | |"]
    for key, name, target in (("aig-jpeg", "aig, JPEG work (`--near-dup off`)", TARGET_CPU),
                              ("aig-jpeg-neardup", "aig, JPEG work with near-duplicate grouping (the default)", None),
                              ("aig-defaults", "aig, default settings", TARGET_DEFAULTS)):
        ratio = 1000 * cpu[key] / ref_ms
        verdict = "" if target is None else f"<= {target}x: {'met' if ratio <= target else '**missed**'}"
        paired = ref["paired"].get(key, [])
        each = f"{', '.join(f'{r:.2f}x' for r in paired)} ({statistics.median(paired):.2f}x)" if paired else ""
        lines.append(f"| {name} | {1000 * cpu[key]:.2f} | **{ratio:.2f}x** | {verdict} | {each} |")
    lines += ["", "*vs OpenCV loop* compares the best of each (the target's verdict); the last column divides each "
              "repeat's figure by the OpenCV loop's figure of the same repeat, measured just before it, which cancels "
              "part of the drift of a shared machine.", "",
              "The JPEG work runs aig with `--near-dup off`, the references' work: near-duplicate grouping "
              "(on by default) decodes every input once more at planning, at 1/8 scale, for its perceptual hash "
              "(the row between).", ""]
    lines += [f"On these {SRC} px JPEGs aig's defaults (`cap 512`) leave every image as decoded, so each keeps its "
              "own bytes after a full validating decode; inputs that need a resize are resized and PNG-encoded "
              "(level 1) and cost more (docs/scaling.md: 34-45 CPU-ms per image on the bundled photos). img2dataset "
              "reads the files through file:// URLs (its usual downloader path); both commands include their "
              "start-up (Ray's for aig)."]
    lines += ["", "All runs: " + "; ".join(f"{k} {w:.2f}s wall" if w is not None else f"{k} {1000 * c:.2f} ms"
                                            for k, w, c in ref["runs"])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# Profile: cProfile of the local executor, grouped by phase
# ------------------------------------------------------------------------------------------------

def profile(images: Path, out: Path, n: int) -> None:
    import cProfile
    import pstats

    from aig.pipeline.build import build
    from aig.pipeline.config import load_config

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(None, {"output": str(out), "inputs.folders": [str(images)], "ingest.policy": "center-crop",
                             "ingest.size": SIZE, "shards.samples_per_shard": PER_SHARD, "runner.executor": "local"})
    t_plain = plain_loop(images, out.with_name(out.name + "-plain"))["seconds"]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    report = build(cfg)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    stats = st.stats  # {(file, line, func): (cc, nc, tt, ct, callers)}

    def cum(file_end: str, func: str, caller: tuple[str, str] | None = None) -> float:
        total = 0.0
        for (f, _, fn), (_, _, _, ct, callers) in stats.items():
            if fn != func or not f.replace(os.sep, "/").endswith(file_end):
                continue
            if caller is None:
                total += ct
            else:
                total += sum(v[3] for (cf, _, cfn), v in callers.items()
                             if cfn == caller[1] and cf.replace(os.sep, "/").endswith(caller[0]))
        return total

    def builtin(name: str, caller: tuple[str, str]) -> float:
        total = 0.0
        for (f, _, fn), (_, _, _, ct, callers) in stats.items():
            if f == "~" and name in fn:
                total += sum(v[3] for (cf, _, cfn), v in callers.items()
                             if cfn == caller[1] and cf.replace(os.sep, "/").endswith(caller[0]))
        return total

    rows = [
        ("build() total (profiled)", wall),
        ("plan: _new_run", cum("pipeline/build.py", "_new_run")),
        ("  enumerate_inputs", cum("pipeline/sources.py", "enumerate_inputs")),
        ("  hash_inputs (threads; sha256 of every input)", cum("pipeline/plan.py", "hash_inputs")),
        ("  provenance (library versions + git)", cum("pipeline/provenance.py", "library_versions")
         + cum("pipeline/provenance.py", "git_commit")),
        ("  read existing manifest tables", cum("manifests/dataset.py", "read_table", ("pipeline/build.py", "_new_run"))),
        ("chunks: run_chunk (all)", cum("pipeline/ingest.py", "run_chunk")),
        ("  prepare (all inputs)", cum("pipeline/ingest.py", "prepare")),
        ("    fetch_input", cum("pipeline/sources.py", "fetch_input", ("pipeline/ingest.py", "_prepare_once"))),
        ("    sha256 re-check of the input", builtin("sha256", ("pipeline/ingest.py", "_prepare_once"))),
        ("    decode_image (open, load, exif_transpose, RGB)", cum("pipeline/decode.py", "decode_image")),
        ("      of which exif_transpose", cum("PIL/ImageOps.py", "exif_transpose")),
        ("    canonicalize (crop + LANCZOS)", cum("pipeline/decode.py", "canonicalize")),
        ("    encode_image (PNG)", cum("pipeline/decode.py", "encode_image")),
        ("  write_chunk (all)", cum("pipeline/ingest.py", "write_chunk")),
        ("    tar_bytes (incl. sha256 per member)", cum("pipeline/shards.py", "tar_bytes")),
        ("    write_shard sha256 of whole tar", builtin("sha256", ("pipeline/shards.py", "write_shard"))),
        ("    atomic_write (write + fsync + rename)", cum("manifests/layout.py", "atomic_write",
                                                        ("pipeline/ingest.py", "write_chunk"))
         + cum("manifests/layout.py", "atomic_write", ("pipeline/shards.py", "write_shard"))),
        ("    parquet_bytes (index/samples/failures)", cum("manifests/schema.py", "parquet_bytes",
                                                          ("pipeline/ingest.py", "write_chunk"))),
        ("finish: write_run", cum("manifests/dataset.py", "write_run")),
        ("finish: info.write_info", cum("pipeline/info.py", "write_info")),
        ("finish: refresh_catalog", cum("manifests/catalog.py", "refresh_catalog")),
        ("done_markers reads", cum("manifests/dataset.py", "done_markers")),
    ]
    print(f"\nplain loop: {t_plain:.2f}s ({n / t_plain:.1f} img/s); aig local executor under cProfile: "
          f"{wall:.2f}s (report.seconds {report.seconds:.2f}); cProfile inflates Python-level work\n")
    print(f"{'phase':58s} {'seconds':>8s} {'ms/img':>7s} {'% of build':>10s}")
    for name, sec in rows:
        print(f"{name:58s} {sec:8.2f} {1000 * sec / n:7.2f} {100 * sec / wall:9.1f}%")
    print("\ntop 25 functions by own time:")
    st.sort_stats("tottime").print_stats(25)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------

def render(best: dict, memory: list[dict], args, started: str, wall: float, all_runs: list[dict]) -> str:
    plain = best.get("plain")
    lines = run_header(f"python benchmarks/ingest.py {' '.join(args.argv)}", started, wall / 60, machine_facts(PACKAGES))
    lines.append(f"- load average (1 min) before / after: {args.load[0]:.2f} / {os.getloadavg()[0]:.2f} "
                 "(other work on the machine skews timings; re-run on an idle machine for firm numbers)")
    lines += ["", f"{args.n} generated {SRC}x{SRC} JPEGs (quality 90) -> centre-crop to {SIZE} px, PNG, "
              f"{PER_SHARD} per tar. Best of {args.repeats} interleaved runs, each in a fresh process. "
              "aig time = `report.seconds - report.ray_startup_s` (planning, hashing, manifests, catalog and "
              "Ray shutdown included; Ray start-up listed separately). Peak RSS: sum over the run's whole "
              "process tree (Ray gcs/raylet/workers included), sampled every 0.1 s; driver = the build process "
              "alone.", ""]
    lines += ["| configuration | images | seconds | images/s | vs plain loop | target | Ray start-up (s) | "
              "peak RSS tree (MiB) | peak RSS driver (MiB) |",
              "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for key, r in best.items():
        ratio = plain["seconds"] / r["seconds"] if plain else float("nan")
        target = {"aig-ray-1": TARGET_1, "aig-ray-2": TARGET_2}.get(key)
        verdict = "" if target is None else f">= {target}x: {'met' if ratio >= target else '**missed**'}"
        times = ", ".join(f"{x['seconds']:.1f}" for x in all_runs if x["key"] == key)
        lines.append(f"| {label(r)} | {r['n']} | {r['seconds']:.2f} ({times}) | {r['n'] / r['seconds']:.1f} | "
                     f"{ratio:.2f}x | {verdict} | {r['ray_startup_s']:.2f} | {r['peak_tree_mb']:.0f} | "
                     f"{r['peak_driver_mb']:.0f} |")
    aig_runs = [(k, r) for k, r in best.items() if r["phases"]]
    if aig_runs:
        names = [p for p in PHASES if any(p in r["phases"] for _, r in aig_runs)]
        lines += ["", "Where aig's wall time goes (driver-side phases of the best run, seconds):", "",
                  "| phase | " + " | ".join(label(r) for _, r in aig_runs) + " |",
                  "|---|" + "---:|" * len(aig_runs)]
        for name in names:
            lines.append(f"| {name.replace('  ', '&nbsp;&nbsp;')} | " + " | ".join(f"{r['phases'].get(name, 0.0):.2f}"
                                                            for _, r in aig_runs) + " |")
    cpu_roles = list(dict.fromkeys(k for r in best.values() for k in sorted(r.get("cpu_s", {}))))
    if cpu_roles:
        lines += ["", "CPU seconds used by each kind of process over the whole run (start-up included; sampled, so "
                  "the last 0.1 s of a process may be missing):", "",
                  "| process | " + " | ".join(label(r) for r in best.values()) + " |",
                  "|---|" + "---:|" * len(best)]
        for role in [*[k for k in cpu_roles if not k.startswith("(")], *[k for k in cpu_roles if k.startswith("(")]]:
            lines.append(f"| {role} | " + " | ".join(f"{r.get('cpu_s', {}).get(role, 0.0):.1f}"
                                                    for r in best.values()) + " |")
    if memory:
        lines += ["", "Peak memory against the number of images (aig, Ray, 2 workers):", "",
                  "| images | seconds | images/s | peak RSS tree (MiB) | peak RSS driver (MiB) | processes |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in memory:
            lines.append(f"| {r['n']} | {r['seconds']:.2f} | {r['n'] / r['seconds']:.1f} | {r['peak_tree_mb']:.0f} "
                         f"| {r['peak_driver_mb']:.0f} | {r['peak_procs']} |")
        if len(memory) >= 2:
            a, b = memory[0], memory[-1]
            lines += ["", f"Ratio {b['n']}/{a['n']} images: whole tree {b['peak_tree_mb'] / a['peak_tree_mb']:.2f}x, "
                      f"driver {b['peak_driver_mb'] / a['peak_driver_mb']:.2f}x (flat = ~1.0)."]
    return "\n".join(lines) + "\n"


def write_results(text: str) -> None:
    write_section("ingest", "ingest.py", "Ingest benchmark",
                  "The issue's target: `aig build-data` ingests 512 px JPEGs into 256 px shards at "
                  f">= {TARGET_1}x a plain single-process loop on 1 CPU and >= {TARGET_2}x on 2 CPUs (Ray start-up "
                  "excluded, reported separately), with peak memory that does not grow with the number of images.\n\n"
                  "Re-run with `python benchmarks/ingest.py --write-results --with-ceiling` (the part between the "
                  "markers is rewritten; notes outside it are kept).", text)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images for the timed runs")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per configuration (best kept)")
    ap.add_argument("--skip-memory", action="store_true", help=f"skip the memory runs at {MEMORY_NS} images")
    ap.add_argument("--with-local", action="store_true", help="also time aig on the in-process executor (once)")
    ap.add_argument("--write-results", action="store_true", help=f"rewrite the generated part of {RESULTS.name}")
    ap.add_argument("--profile", action="store_true", help="cProfile aig's local executor at --n, then exit")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "aig-bench"),
                    help="images (kept between runs) and outputs")
    ap.add_argument("--with-ceiling", action="store_true",
                    help="also time 2 plain loops at once on halves of the images (what 2 CPUs can give)")
    ap.add_argument("--one-run", choices=("plain", "plain-parallel", "opencv", "aig-ray", "aig-local"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--settings", choices=tuple(SETTINGS), default="png", help=argparse.SUPPRESS)
    ap.add_argument("--references-only", action="store_true",
                    help="run only the comparison with img2dataset and the OpenCV loop (JPEG work, defaults)")
    ap.add_argument("--skip-references", action="store_true",
                    help="skip the comparison with img2dataset and the OpenCV loop")
    ap.add_argument("--img2dataset-venv", default=str(I2D_VENV),
                    help="virtualenv for img2dataset (created with pip if missing)")
    ap.add_argument("--images", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = argv
    if args.one_run:
        return one_run(args)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    images = ensure_images(workdir, args.n)
    if args.profile:
        return profile(images, workdir / "out-profile", args.n)

    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    args.load = os.getloadavg()
    if not args.skip_references:
        ref_text = render_references(references(args, workdir), args, started)
        print("\n" + ref_text)
        if args.write_results:
            write_section("ingest-refs", "ingest.py", "Ingest against img2dataset and an OpenCV loop",
                          "Whole-command wall time against img2dataset and marginal CPU per image against a plain "
                          "OpenCV loop, on the same images and work, in the same run. Targets: aig's wall time <= "
                          f"img2dataset's; marginal CPU/image <= {TARGET_CPU}x the OpenCV loop for the JPEG work and "
                          f"<= {TARGET_DEFAULTS}x with aig's default settings.", ref_text)
        if args.references_only:
            return
    t_start = time.perf_counter()
    configs = [("plain", "plain", 1), ("aig-ray-1", "aig-ray", 1), ("aig-ray-2", "aig-ray", 2)]
    if args.with_ceiling:
        configs.append(("plain-parallel-2", "plain-parallel", 2))
    all_runs: list[dict] = []
    best: dict[str, dict] = {}
    print(f"{'run':44s} {'images':>6s} {'seconds':>8s} {'img/s':>7s} {'ray start':>9s} {'peak tree':>10s} "
          f"{'driver':>8s}", flush=True)

    def record(key: str, r: dict) -> dict:
        r["key"] = key
        all_runs.append(r)
        print(f"{label(r):44s} {r['n']:6d} {r['seconds']:8.2f} {r['n'] / r['seconds']:7.1f} "
              f"{r['ray_startup_s']:8.2f}s {r['peak_tree_mb']:8.0f}Mi {r['peak_driver_mb']:6.0f}Mi", flush=True)
        return r

    for _ in range(args.repeats):
        for key, mode, workers in configs:
            r = record(key, measure(mode, images, workdir / f"out-{key}", workers, args.n, workdir))
            if key not in best or r["seconds"] < best[key]["seconds"]:
                best[key] = r
    if args.with_local:
        best["aig-local-1"] = record("aig-local-1", measure("aig-local", images, workdir / "out-aig-local", 1,
                                                            args.n, workdir))
    memory: list[dict] = []
    if not args.skip_memory:
        for n in MEMORY_NS:
            folder = ensure_images(workdir, n)
            memory.append(record("memory", measure("aig-ray", folder, workdir / f"out-memory-{n}", 2, n, workdir)))
            shutil.rmtree(workdir / f"out-memory-{n}", ignore_errors=True)
    wall = time.perf_counter() - t_start

    text = render(best, memory, args, started, wall, all_runs)
    print("\n" + text)
    plain = best["plain"]["seconds"]
    ok = [plain / best["aig-ray-1"]["seconds"] >= TARGET_1, plain / best["aig-ray-2"]["seconds"] >= TARGET_2]
    print(f"targets: 1 worker >= {TARGET_1}x {'met' if ok[0] else 'MISSED'}; "
          f"2 workers >= {TARGET_2}x {'met' if ok[1] else 'MISSED'}")
    if args.write_results:
        write_results(text)


if __name__ == "__main__":
    main()
