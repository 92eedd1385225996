"""OperatorChain: several batch operators run one after another inside one process.

The crawl puts consecutive face stages in one actor pool when they need no accelerator of their
own (`pipeline.stage_pools`): a face row then crosses the object store once, small, instead of
once per stage with its 112x112 and 224x224 crops, and there is one actor process fewer to
start and feed. Each operator keeps its own class and batch-in / batch-out `__call__`, so the
Serve app still builds them one by one.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

# A step is (operator class, constructor kwargs), built in the worker, or a ready callable
# (a function such as schema.to_output, or a small picklable object).
Step = Union[tuple[type, dict], Callable[[Any], Any]]


class OperatorChain:
    def __init__(self, steps: Sequence[Step]):
        if not steps:
            raise ValueError("an operator chain needs at least one step")
        self.operators = [step[0](**step[1]) if isinstance(step, tuple) else step for step in steps]

    def __call__(self, batch):
        for operator in self.operators:
            batch = operator(batch)
        return batch


def chain_class(name: str) -> type:
    """An OperatorChain subclass named after its operators, so Ray Data's plan, progress bars,
    stats and process titles say ``MapBatches(FaceAnalyzer+GalleryMatcher)``."""
    return type(name, (OperatorChain,), {"__module__": __name__})
