"""DistributedDataParallel plumbing: the torchrun environment and the process group."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


# --------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env(environ: dict[str, str] | None = None) -> DistInfo:
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is not within WORLD_SIZE {world}")
    return DistInfo(rank, world, local)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    import torch.distributed as dist

    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)


def torchrun_command(python: str, processes: int, args: list[str]) -> list[str]:
    """``python -m core.train <args>`` under torchrun with ``processes`` processes on this machine (the
    command a terminal user types as ``torchrun --standalone --nproc_per_node=N -m core.train ...``)."""
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(processes)}",
            "-m", "core.train", *args]
