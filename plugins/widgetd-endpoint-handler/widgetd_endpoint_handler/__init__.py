"""widgetd plugin serving Hub repos that ship their own serving code: an Inference Endpoints
``handler.py`` (``EndpointHandler``) or a legacy ``pipeline.py`` (``PreTrainedPipeline``)."""

from widgetd import hookimpl
from widgetd_endpoint_handler.backend import BACKEND
from widgetd_endpoint_handler.custom import TASK as CUSTOM_TASK

__version__ = "0.2.0.dev0"
widgetd_hook_api = 1
"""The version of widgetd's hooks this plugin implements (``widgetd.HOOK_API``)."""


@hookimpl
def register_tasks(register):
    register(CUSTOM_TASK)


@hookimpl
def register_backends(register):
    register(BACKEND)
