"""The Slurm script as the README submits it, on this machine: ``sbatch``, ``srun`` and
``scontrol`` are small stand-ins that do what Slurm does with the script (run it in a job with
SLURM_* set, once per node for srun; sbatch refuses when the --output folder is missing, as Slurm
does), and every node is 127.0.0.1. The real torchrun rendezvous joins the nodes, and
``lima-train --dry-run`` prints each rank's environment."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytest.importorskip("torch")

SCRIPT = ROOT / "training" / "launch" / "slurm.sbatch"
TINY = ROOT / "training" / "recipes" / "tiny-cpu.yaml"

FAKE_SBATCH = """#!/usr/bin/env bash
# Slurm opens --output before the script runs and fails the job when its folder is missing.
nodes=1
while [[ $# -gt 0 && $1 == -* ]]; do
  case $1 in --nodes) nodes=$2; shift 2;; --nodes=*) nodes=${1#*=}; shift;; *) shift;; esac
done
[[ -d logs ]] || { echo "sbatch: logs/ does not exist: the job's output is lost" >&2; exit 1; }
echo "Submitted batch job 4242"
script=$1; shift
SLURM_JOB_ID=4242 SLURM_NNODES=$nodes SLURM_JOB_NODELIST="node[1-$nodes]" \\
  SLURM_CPUS_PER_TASK=2 bash "$script" "$@" > logs/lima-train-4242.out 2>&1
"""

FAKE_SCONTROL = """#!/usr/bin/env bash
for _ in $(seq "$SLURM_NNODES"); do echo 127.0.0.1; done
"""

FAKE_SRUN = """#!/usr/bin/env bash
# One task per node, each with its node's SLURM_NODEID; the options go to srun_args.txt.
opts=()
while [[ $# -gt 0 && $1 == -* ]]; do
  case $1 in --cpus-per-task) opts+=("$1" "$2"); shift 2;; *) opts+=("$1"); shift;; esac
done
echo "${opts[@]}" > srun_args.txt
pids=()
for node in $(seq 0 $((SLURM_NNODES - 1))); do
  SLURM_NODEID=$node SLURM_PROCID=$node "$@" & pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slurm(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working directory with no logs/, and an environment whose PATH has the stand-ins,
    then the venv's bin (lima-train, torchrun), then the system's."""
    bin_dir = tmp_path / "fake-slurm"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scontrol", FAKE_SCONTROL),
                       ("srun", FAKE_SRUN)):  # fmt: skip
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    work = tmp_path / "job"
    work.mkdir()
    env = {
        "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), "/usr/bin:/bin"]),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "GPUS_PER_NODE": "1",
        "HEAD_PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
    }
    return work, env


def test_the_readme_submission_makes_logs_and_each_rank_reports(
    slurm: tuple[Path, dict[str, str]],
) -> None:
    work, env = slurm
    done = subprocess.run(
        [str(SCRIPT), "--nodes", "2", str(TINY), "nodes=2", "gpus_per_node=1", "--dry-run"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    log = work / "logs" / "lima-train-4242.out"
    assert done.returncode == 0, done.stderr + (log.read_text() if log.exists() else "")
    out = log.read_text()
    assert "ok " in out and "2 rank(s) × micro-batch 4 × accumulation 8 = 64" in out
    ranks = sorted(re.findall(r"^rank (\d)/2 host=\S+ (.*)$", out, re.M))
    assert [r for r, _ in ranks] == ["0", "1"], out
    for rank, rest in ranks:
        assert f"RANK={rank} LOCAL_RANK=0 WORLD_SIZE=2 LOCAL_WORLD_SIZE=1" in rest
        assert "SLURM_JOB_ID=4242" in rest and "SLURM_CPUS_PER_TASK=2" in rest
    assert {re.search(r"SLURM_NODEID=(\d)", rest).group(1) for _, rest in ranks} == {"0", "1"}  # type: ignore[union-attr]
    assert "dry run: 2 rank(s) answered" in out
    assert "--cpus-per-task 2" in (work / "srun_args.txt").read_text()


def test_a_job_with_fewer_nodes_than_the_recipe_stops_at_start_up(
    slurm: tuple[Path, dict[str, str]],
) -> None:
    work, env = slurm
    # A recipe written for two nodes, submitted without --nodes: the job has one.
    done = subprocess.run(
        [str(SCRIPT), str(TINY), "nodes=2", "gpus_per_node=1", "--dry-run"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = (work / "logs" / "lima-train-4242.out").read_text()
    assert done.returncode == 1 and not (work / "srun_args.txt").exists()
    assert "Traceback" not in out
    assert "written for nodes: 2, but the job has 1 node(s); submit with --nodes 2" in out
