"""Deprecations: what plugins and users rely on warns for one minor release before it is removed."""

from __future__ import annotations

import warnings


class WidgetdDeprecationWarning(DeprecationWarning):
    """Something widgetd will remove in the release the message names; the message says what to do instead."""


def deprecated(what: str, removed_in: str, instead: str, *, stacklevel: int = 3) -> None:
    warnings.warn(f"{what} is deprecated and will stop working in widgetd {removed_in}: {instead}", WidgetdDeprecationWarning, stacklevel=stacklevel)
