"""The base of every task: a :class:`~evalharness.components.Component` of kind "task".

A task reads one dataset, declares the texts it needs by role and scores the vectors it
is given (see ``evalharness.components`` for what a component declares).
"""

from __future__ import annotations

from typing import ClassVar

# Component, ComponentConfig, EncoderContext and TextNeed live in evalharness.components;
# they are re-exported here because code outside tasks/checks (the runner, mteb_task)
# imports them from this module.
from evalharness.components import Component, ComponentConfig, EncoderContext, TextNeed


class Task(Component):
    kind: ClassVar[str] = "task"


__all__ = ["Component", "ComponentConfig", "EncoderContext", "Task", "TextNeed"]
