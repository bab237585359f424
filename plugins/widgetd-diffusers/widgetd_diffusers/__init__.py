"""widgetd plugin serving diffusers pipelines: text-to-image and image-to-image."""

from widgetd import hookimpl
from widgetd_diffusers.backend import BACKEND

__version__ = "0.2.0.dev0"
widgetd_hook_api = 1
"""The version of widgetd's hooks this plugin implements (``widgetd.HOOK_API``)."""


@hookimpl
def register_backends(register):
    register(BACKEND)
