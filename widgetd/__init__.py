"""widgetd: serve Hugging Face Hub widget inference over HTTP, for any ML library."""

from widgetd.backends import Backend, ModelSnapshot, Pipeline
from widgetd.errors import (
    ClientError,
    InvalidInput,
    ModelResolutionError,
    PluginError,
    UnsupportedMedia,
    WidgetdError,
)
from widgetd.hookspecs import HOOK_API, hookimpl
from widgetd.limits import Limits
from widgetd.tasks import Task

__version__ = "0.2.0.dev0"

__all__ = [
    "Backend",
    "ClientError",
    "HOOK_API",
    "InvalidInput",
    "Limits",
    "ModelResolutionError",
    "ModelSnapshot",
    "Pipeline",
    "PluginError",
    "Task",
    "UnsupportedMedia",
    "WidgetdError",
    "hookimpl",
]
