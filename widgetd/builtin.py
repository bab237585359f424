"""The core's own plugin: the built-in task contracts, registered like any other."""

from widgetd.hookspecs import hookimpl
from widgetd.tasks import BUILTIN_TASKS


@hookimpl
def register_tasks(register):
    for task in BUILTIN_TASKS:
        register(task)
