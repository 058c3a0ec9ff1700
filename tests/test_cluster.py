"""`aig build-data` and `aig train --num-workers 2` with --ray-address on a real two-node Ray cluster on this machine."""

from __future__ import annotations

import json

import pytest

from conftest import run_aig, tar_digests
from ray_cluster import start_cluster

BUILD = ["build-data", "--stages", "ingest,reconstruct", "--samples-per-shard", "3", "--size", "64"]


@pytest.fixture(scope="module")
def cluster():
    """Node A (head) and node B, one CPU and one custom resource each; only its own processes are stopped."""
    c = start_cluster()
    yield c
    c.stop()
    assert c.processes() == [], "the test cluster's processes outlived its teardown"


@pytest.fixture(scope="module")
def builds(cluster, tmp_path_factory):
    """The same pixel dataset built on the two-node cluster and in one process."""
    root = tmp_path_factory.mktemp("cluster-builds")
    multi, single = root / "multi", root / "single"
    proc = run_aig(*BUILD, "-o", multi, "--ray-address", cluster.address)
    run_aig(*BUILD, "-o", single, "--executor", "local")
    return multi, single, proc


def _nodes_by_stage(dataset) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in (dataset / "manifest" / "done").glob("*.json"):
        marker = json.loads(p.read_text())
        out.setdefault(marker["stage"], set()).add(marker["worker"].get("ray_node_id"))
    return out


@pytest.mark.slow  # 50 s on the 2-core machine at load 3 (cluster start/stop ~20 s), ~2 min at load 8
def test_build_data_spreads_over_two_nodes_and_equals_single_node(cluster, builds):
    multi, single, proc = builds
    assert f"({cluster.address}, 2 CPUs)" in proc.stderr
    both = set(cluster.nodes.values())
    by_stage = _nodes_by_stage(multi)
    # 4 ingest chunks as 1-CPU tasks, and 2 reconstruct actors of 1 CPU each: both nodes must take a share.
    assert by_stage == {"ingest": both, "reconstruct": both}, (by_stage, cluster.nodes)
    assert len(tar_digests(single)) >= 8
    assert tar_digests(multi) == tar_digests(single)
    run_aig("verify", multi)


TRAIN = ["train", "--num-workers", "2", "--max-steps", "3", "--loader-workers", "0", "--crop-size", "32",
         "--batch-size", "4", "--crops-per-pair", "2", "--threads", "1", "--no-progress", "--warmup-steps", "2",
         "--log-every", "1"]


@pytest.mark.slow  # two Ray Train runs of 3 DDP steps: 60 s together at load 3
def test_train_two_workers_on_two_nodes_equals_single_node(cluster, builds, tmp_path):
    multi, single, _ = builds
    run_aig(*TRAIN, "-d", multi, "-o", tmp_path / "multi", "--ray-address", cluster.address)
    # one 1-CPU Ray Train worker per 1-CPU node: the two DDP ranks ran on different nodes
    assert sorted(cluster.actor_nodes("RayTrainWorker")) == sorted(cluster.nodes.values())
    run_aig(*TRAIN, "-d", single, "-o", tmp_path / "single")  # a local Ray on this process's machine
    weights = [(tmp_path / run / "final" / "model.safetensors").read_bytes() for run in ("multi", "single")]
    assert weights[0] == weights[1]
    metrics = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
               for run in ("multi", "single")]
    losses = [[m["loss"] for m in rows if "loss" in m] for rows in metrics]
    assert len(losses[0]) == 3 and losses[0] == losses[1]
    assert [m for m in metrics[0] if "threshold" in m] == [m for m in metrics[1] if "threshold" in m]
