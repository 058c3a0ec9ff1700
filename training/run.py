"""`aig train` as a library function: options -> the branch's typed config -> run(config) -> TrainReport."""

from __future__ import annotations


from .config import CONFIGS, ConfigError, TrainConfig
from .loop import TrainReport


def _flags(names) -> str:
    return ", ".join("--" + n.replace("_", "-") for n in names)


def config_from_options(branch: str, options: dict) -> TrainConfig:
    """The branch's config from command options (None = the branch's default); an option of the other branch
    (or of none) is refused, naming it."""
    if branch not in CONFIGS:
        raise ConfigError(f"--branch {branch!r} unknown; use {' or '.join(CONFIGS)}")
    cls = CONFIGS[branch]
    given = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(set(given) - cls.option_names())
    for other, ocls in CONFIGS.items():
        theirs = [k for k in wrong if k in ocls.option_names()]
        if theirs:
            raise ConfigError(f"option(s) {_flags(theirs)} apply to --branch {other} only")
    if wrong:
        raise ConfigError(f"unknown option(s) {_flags(wrong)}")
    return cls.from_options(given)


def check_dataset(path: str) -> None:
    """A dataset folder is there (its catalog), else say how to build one."""
    from aig.manifests.dataset import Dataset

    if not Dataset(path).catalog_path.is_file():
        from .shards import DataError

        raise DataError(f"no dataset at '{path}': build one with `aig build-data -o {path}`")


def run(cfg: TrainConfig) -> TrainReport:
    """Train the config's branch here or on Ray Train (--num-workers); returns what the run made."""
    cfg.validate()
    check_dataset(cfg.dataset)
    if cfg.num_workers >= 1 and (cfg.num_workers > 1 or cfg.ray_address):
        from .distributed import run_on_ray

        return TrainReport.from_dict(run_on_ray(cfg, cfg.branch))
    from .branches import adapter_for
    from .loop import train

    return train(adapter_for(cfg))
