"""widgetd: serve Hugging Face Hub widget inference over HTTP, for any ML library."""

__version__ = "0.2.0.dev0"
"""The installed distribution's version too (pyproject reads it): read it here, not with importlib.metadata,
which parses the distribution's metadata file at every call. Set before the imports below, so that a module
imported on the way may read it too."""

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
