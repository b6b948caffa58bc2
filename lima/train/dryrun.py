"""``lima-train --dry-run``: rehearse a multi-node launch without loading a model.

Every rank joins the launcher's process group (torchrun, the deepspeed launcher, Slurm via
torchrun) on gloo, which needs no GPU, and prints one line with the environment the launcher gave
it; rank 0 then checks that all ranks answered and prints the batch arithmetic for the world size
the launch really has. A rendezvous that cannot form fails here, in seconds, not after the
weights have loaded.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import timedelta

from lima.train.recipe import Recipe

#: What a rank's launcher sets; each rank prints these.
ENV_KEYS = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_JOB_ID",
    "SLURM_NODEID",
    "SLURM_CPUS_PER_TASK",
    "CUDA_VISIBLE_DEVICES",
)


def rank_line(env: dict[str, str], host: str) -> str:
    """One rank's environment as ``rank R/W host=... KEY=value ...`` (unset keys left out)."""
    head = f"rank {env.get('RANK', '0')}/{env.get('WORLD_SIZE', '1')} host={host}"
    return " ".join([head, *(f"{k}={env[k]}" for k in ENV_KEYS if k in env)])


def dry_run(recipe: Recipe) -> None:
    import torch.distributed as dist

    env = dict(os.environ)
    launched = "WORLD_SIZE" in env
    if not launched:
        env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    print(rank_line(env, socket.gethostname()), flush=True)
    world = int(env["WORLD_SIZE"])
    if launched:
        dist.init_process_group("gloo", timeout=timedelta(seconds=120))
        rank = dist.get_rank()
        hosts: list[object] = [None] * world
        dist.all_gather_object(hosts, socket.gethostname())
        dist.barrier()
        dist.destroy_process_group()
    else:
        rank, hosts = 0, [socket.gethostname()]
    if rank != 0:
        return
    accumulation = recipe.gradient_accumulation(world)
    nodes = len(set(hosts)) if launched else 1
    print(
        f"dry run: {world} rank(s) answered on {nodes} host(s); recipe {recipe.name!r} "
        f"declares {recipe.nodes} node(s) × {recipe.gpus_per_node}; micro-batch "
        f"{recipe.micro_batch_size} × accumulation {accumulation} × {world} = "
        f"{recipe.global_batch_size}",
        flush=True,
    )
    if world != recipe.nodes * recipe.gpus_per_node:
        print(
            f"note: the recipe's topology is {recipe.nodes * recipe.gpus_per_node} rank(s); "
            f"this launch has {world}",
            file=sys.stderr,
            flush=True,
        )
