"""widgetd plugin serving transformers models."""

from widgetd import hookimpl
from widgetd_transformers.backend import BACKEND


@hookimpl
def register_backends(register):
    register(BACKEND)
