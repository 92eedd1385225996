"""The face stages (operators/stages.py) grouped into Ray Data actor pools: consecutive stages
share one actor (operators/chain.py) unless one needs GPUs of its own."""
from __future__ import annotations

from dataclasses import dataclass

from operators.stages import Stage, chain_steps


@dataclass
class Pool:
    """Consecutive stages run by one actor pool (operators.chain.OperatorChain when several)."""

    stages: list[Stage]
    num_cpus: float
    num_gpus: float

    @property
    def name(self) -> str:
        return "+".join(stage.operator.__name__ for stage in self.stages)

    def steps(self) -> list:
        return chain_steps(self.stages)


def stage_pools(stages: list[Stage], fuse: bool, cluster_cpus: float, reserved_cpus: float,
                nodes: list[tuple[float, float]] | None = None) -> list[Pool]:
    """Group stages into actor pools. Fused, a stage joins the previous pool unless it needs GPUs
    of its own: a GPU forgery scorer keeps its pool, the CPU matcher rides with the analyzer.
    A fused pool asks for the sum of its stages' CPUs, capped so that every actor of every pool
    still leaves ``reserved_cpus`` (read, decode, write) free. Every pool is also capped to the
    largest node that has the GPUs it needs (``nodes``: (cpus, gpus) per node): an actor bigger
    than every such node is never placed, and the job hangs."""
    groups: list[list[Stage]] = []
    for stage in stages:
        if fuse and groups and stage.num_gpus == 0:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    pools = [Pool(group, sum(s.num_cpus for s in group), sum(s.num_gpus for s in group)) for group in groups]
    for pool in pools:
        if len(pool.stages) > 1:
            others = sum(p.num_cpus * p.stages[0].actors for p in pools if p is not pool)
            room = (cluster_cpus - reserved_cpus - others) / pool.stages[0].actors
            pool.num_cpus = max(0.25, min(pool.num_cpus, room))
        fitting = [cpus for cpus, gpus in (nodes or []) if gpus >= pool.num_gpus]
        if fitting:
            pool.num_cpus = min(pool.num_cpus, max(fitting))
    return pools
