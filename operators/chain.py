"""OperatorChain: several batch operators run one after another inside one process.

The crawl puts consecutive face stages in one actor pool when they need no accelerator of their
own (`vipwatch.crawl.pools.stage_pools`): a face row then crosses the object store once, small, instead of
once per stage with its 112x112 and 224x224 crops, and there is one actor process fewer to
start and feed. Each operator keeps its own class and batch-in / batch-out `__call__`, so the
Serve app still builds them one by one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

# A step is (operator class, constructor kwargs), built in the worker, or a ready callable
# (a function such as schema.to_output, or a small picklable object).
Step = Union[tuple[type, dict], Callable[[Any], Any]]


@dataclass(frozen=True)
class Shared:
    """A constructor argument that is an attribute of an operator built earlier in the same
    chain (the matcher's gallery, the analyzer's model pack): one copy per process, however
    many stages use it."""

    operator: type
    attribute: str


class OperatorChain:
    def __init__(self, steps: Sequence[Step]):
        if not steps:
            raise ValueError("an operator chain needs at least one step")
        self.operators: list = []
        for step in steps:
            if not isinstance(step, tuple):
                self.operators.append(step)
                continue
            operator, kwargs = step
            self.operators.append(operator(**{name: self._resolve(value) for name, value in kwargs.items()}))

    def _resolve(self, value):
        if not isinstance(value, Shared):
            return value
        for built in self.operators:
            if isinstance(built, value.operator):
                return getattr(built, value.attribute)
        raise ValueError(f"no {value.operator.__name__} before this step to share {value.attribute!r} from")

    def __call__(self, batch):
        for operator in self.operators:
            batch = operator(batch)
        return batch


def chain_class(name: str) -> type:
    """An OperatorChain subclass named after its operators, so Ray Data's plan, progress bars,
    stats and process titles say ``MapBatches(FaceAnalyzer+GalleryMatcher)``."""
    return type(name, (OperatorChain,), {"__module__": __name__})
