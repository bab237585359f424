"""widgetd plugin serving sentence-transformers models."""

from widgetd import hookimpl
from widgetd_sentence_transformers.backend import BACKEND, DEFAULT_MODEL_ID, bundled_model_path

__version__ = "0.2.0.dev0"
widgetd_hook_api = 1
"""The version of widgetd's hooks this plugin implements (``widgetd.HOOK_API``)."""


@hookimpl
def register_backends(register):
    register(BACKEND)


@hookimpl
def register_bundled_models(register):
    path = bundled_model_path()
    if path is not None:
        register(DEFAULT_MODEL_ID, path)
