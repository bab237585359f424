"""widgetd plugin serving scikit-learn models: tabular classification and regression."""

from widgetd import hookimpl
from widgetd_sklearn.backend import BACKEND

__version__ = "0.2.0.dev0"
widgetd_hook_api = 1
"""The version of widgetd's hooks this plugin implements (``widgetd.HOOK_API``)."""


@hookimpl
def register_backends(register):
    register(BACKEND)
