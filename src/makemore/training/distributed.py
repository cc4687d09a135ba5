"""Training on several processes with PyTorch's DistributedDataParallel, started by torchrun:

    torchrun --standalone --nproc_per_node=2 -m makemore train ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a no-op and training is the
single-process kind. --batch-size stays the global batch: every rank draws the same batch from one shared
stream and trains on its own slice of it, so N ranks follow the single-process trajectory (up to the order
of floating-point sums), and the batch generator's state in a checkpoint is every rank's state. Rank 0 alone
evaluates, logs, draws progress and writes checkpoints; the weights it saves are the plain model's, so they
load in a single process.

Elastic runs: `torchrun --max-restarts=K ... train --resume auto`. When a rank dies, torchrun stops the others
(their next collective fails at once: the dead peer's sockets are closed) and starts the whole group again, a
fresh rendezvous with TORCHELASTIC_RESTART_COUNT one higher; --resume auto continues from the last checkpoint, so
at most one --eval-interval of steps is done again, and the same steps as an uninterrupted run follow (the saved
generators). Nothing carries over between attempts but the run folder: the processes are new, the run lock is
rank 0's alone (the kernel drops a killed holder's), and a checkpoint is whole or absent (checkpoint.save).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
from dataclasses import dataclass

import torch

from makemore.errors import MakemoreError

logger = logging.getLogger("makemore")


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def slice(self, batch_size: int) -> slice:
        """This rank's rows of a global batch."""
        per = batch_size // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of `values` over the ranks (every rank gets it). One collective for several numbers."""
        if not self.active:
            return values
        values = values.detach().to(torch.float64).clone()
        torch.distributed.all_reduce(values)
        return values / self.world


def from_environment() -> Group:
    """The process group torchrun describes in the environment (a single process when there is none)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group()
    return Group(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def restarts() -> int:
    """How many times torchrun has restarted this group after a failure (0 on its first attempt, or without it)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def start(group: Group, device: torch.device) -> torch.device:
    """Join the process group (gloo on CPU, nccl on CUDA) and return this rank's device."""
    if not group.active:
        return device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():  # (a group the caller made is used as it is, and left to the caller)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=_attempt_store(),
                                rank=group.rank, world_size=group.world)
        global _joined, _owned
        if not _joined:  # (once per process)
            atexit.register(gc.collect)  # what an error kept alive past stop() below goes before the teardown
        _joined = _owned = True
    if group.main and restarts():
        limit = os.environ.get("TORCHELASTIC_MAX_RESTARTS", "?")
        logger.info(f"torchrun restarted the group after a failure (restart {restarts()} of at most {limit})")
    if group.main and _restarts_cannot_meet():
        logger.warning("a group torchrun restarts (--max-restarts) would fail to meet again: set "
                       "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for every torchrun of a run on several nodes")
    return device


def _restarts_cannot_meet() -> bool:
    """Whether torchrun may restart this group while several launchers share their store across attempts (see
    _attempt_store): a rank of the restarted group would find a dead rank's address there."""
    env = os.environ
    return (env.get("TORCHELASTIC_MAX_RESTARTS", "0") != "0" and env.get("GROUP_WORLD_SIZE", "1") != "1"
            and env.get("TORCHELASTIC_USE_AGENT_STORE") == "True")


def _attempt_store() -> torch.distributed.Store | None:
    """The store the group meets in, for a restarted single-node group: torchrun's own, under a prefix of its own
    per attempt. Its workers share the launcher's store across restarts (unprefixed, as of torch 2.13), so a rank
    of attempt 1 could read the address of attempt 0's dead rank 0 there and fail to connect ("Connection
    refused"), using up a restart. With several nodes the restart count is each launcher's own and may differ
    between them: there set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for every torchrun (a fresh store per attempt)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or os.environ.get("GROUP_WORLD_SIZE") != "1":
        return None  # (None: torch's env:// rendezvous)
    from torch.distributed.constants import default_pg_timeout

    store = torch.distributed.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                       is_master=False, timeout=default_pg_timeout)
    return torch.distributed.PrefixStore(f"makemore/attempt-{restarts()}", store)


_joined = False  # this process has been a rank of a group it made
_owned = False  # the current group is the one start() made


def joined() -> bool:
    """Whether this process has been a rank of a process group (see cli.console)."""
    return _joined


def check(group: Group, batch_size: int, model) -> None:
    if not group.active:
        return
    if batch_size == 0 or batch_size % group.world:
        raise MakemoreError(f"--batch-size ({batch_size}) must be a multiple of the {group.world} processes "
                            "(it is the global batch, split between them)")
    if getattr(model, "manual_gradients", False) or not model.trainable:
        raise MakemoreError(f"a {type(model).__name__} model trains in one process only")


def finish(group: Group) -> None:
    """After a run that ended well: every rank waits for the others (rank 0 may still be evaluating and saving),
    so that they leave the group together; a rank tearing its group down while another still works on it has
    hung a gloo shutdown here, rarely."""
    if group.active and torch.distributed.is_initialized():
        torch.distributed.barrier()


def stop(group: Group) -> None:
    """Leave the process group. DistributedDataParallel sits in reference cycles: collected now (the loop has let
    go of it), the wrapper and the group's work it holds go while the interpreter is whole. Left to the
    interpreter's teardown, their gloo threads reached for a Python already gone, and the rank aborted now and
    again ("terminate called without an active exception"). The CLI also ends its ranks without that teardown
    (cli.console)."""
    global _owned
    if group.active and torch.distributed.is_initialized():
        gc.collect()
        if _owned:
            torch.distributed.destroy_process_group()
            _owned = False
