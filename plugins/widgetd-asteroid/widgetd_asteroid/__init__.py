"""widgetd plugin serving asteroid source-separation models."""

from widgetd import hookimpl
from widgetd_asteroid.backend import BACKEND


@hookimpl
def register_backends(register):
    register(BACKEND)
