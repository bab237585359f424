"""Loading a model file safely: skops files type by type, pickle and joblib files only when trusted."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from widgetd import ModelResolutionError

TRUSTED_LIBRARIES = ("sklearn", "numpy", "scipy")
"""Whose own types a skops file may build without --trust-remote-code: scikit-learn, numpy and scipy are
what every model is made of (a random forest's ``sklearn.tree._tree.Tree`` included); anything else (a
library's estimator, a user's function) is code the operator has not read."""


def refuse_pickle(model_id: str, model_file: str) -> ModelResolutionError:
    return ModelResolutionError(
        f"model {model_id!r} is a pickle file ({model_file}): loading it runs whatever code it holds, so it loads "
        "only with --trust-remote-code (or HF_TRUST_REMOTE_CODE=1). Trust it only if you trust its author, or ask "
        "for a copy saved with skops (skops.io.dump), which loads without running code"
    )


def load_model(model_id: str, path: Path, model_format: str, trust_remote_code: bool) -> Any:
    if model_format == "pickle":
        if not trust_remote_code:
            raise refuse_pickle(model_id, path.name)
        import joblib

        return joblib.load(path)  # reads plain pickles too
    return _load_skops(model_id, path, trust_remote_code)


def _load_skops(model_id: str, path: Path, trust_remote_code: bool) -> Any:
    import skops.io

    needed = skops.io.get_untrusted_types(file=path)
    foreign = sorted(name for name in needed if not _is_trusted(name))
    if foreign and not trust_remote_code:
        raise ModelResolutionError(
            f"model {model_id!r} ({path.name}) builds types from outside scikit-learn, numpy and scipy: "
            f"{', '.join(foreign)}. Loading them runs their code, so it happens only with --trust-remote-code "
            "(or HF_TRUST_REMOTE_CODE=1) once you trust the libraries they come from"
        )
    return skops.io.load(path, trusted=list(needed))


def _is_trusted(name: str) -> bool:
    """A class of scikit-learn, numpy or scipy, or a numpy ufunc (``FunctionTransformer(np.log1p)``): building
    one runs only those libraries' own constructors. Their other functions are refused (numpy's test helpers
    include one that runs a string as code), as is anything from a ``testing`` module."""
    module_name, _, attribute = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] not in TRUSTED_LIBRARIES or "testing" in parts:
        return False
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    import numpy

    return isinstance(found, (type, numpy.ufunc))
