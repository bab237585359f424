"""widgetd plugin serving sentence-transformers models."""

from widgetd import hookimpl
from widgetd_sentence_transformers.backend import BACKEND, DEFAULT_MODEL_ID, bundled_model_path


@hookimpl
def register_backends(register):
    register(BACKEND)


@hookimpl
def register_bundled_models(register):
    path = bundled_model_path()
    if path is not None:
        register(DEFAULT_MODEL_ID, path)
