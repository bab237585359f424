"""Small scikit-learn models trained here and saved in the Hub's layout (as skops's hub_utils writes it),
for tests here and in widgetd's client suites."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FISH = {
    "Species": ["Bream", "Bream", "Roach", "Roach", "Pike", "Pike", "Perch", "Perch"] * 4,
    "Length": [23.2, 24.0, 18.5, 19.0, 40.1, 45.3, 21.0, 22.5] * 4,
    "Height": [11.5, 12.4, 6.1, 6.5, 7.0, 7.9, 5.9, 6.3] * 4,
    "Width": [4.02, 4.31, 3.1, 3.2, 4.2, 4.8, 3.5, 3.7] * 4,
}
"""A fish's measurements; the classifier tells the species, the regressor its weight."""

WEIGHTS = [242.0, 290.0, 120.0, 135.0, 510.0, 650.0, 150.0, 170.0] * 4
MEASURES = ("Length", "Height", "Width")


def _jitter(values: list[float], seed: int) -> list[float]:
    import numpy as np

    noise = np.random.default_rng(seed).normal(0, 0.3, len(values))
    return [round(float(value + step), 2) for value, step in zip(values, noise)]


def training_table() -> dict[str, list[Any]]:
    return {name: (cells if name == "Species" else _jitter(cells, index)) for index, (name, cells) in enumerate(FISH.items())}


SPECIES = ("Bream", "Roach", "Pike", "Perch")


def classifier(numbered: bool = False):
    """A random forest telling a fish's species from its measurements (needs sklearn.tree._tree.Tree);
    ``numbered``: the species as their index in SPECIES, as models trained on coded classes answer."""
    import pandas
    from sklearn.ensemble import RandomForestClassifier

    table = pandas.DataFrame(training_table())
    species = table["Species"].map(SPECIES.index) if numbered else table["Species"]
    return RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(table[list(MEASURES)], species)


def regressor():
    """A pipeline reading a text column (one-hot) and numbers, predicting a fish's weight."""
    import pandas
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    table = pandas.DataFrame(training_table())
    columns = ColumnTransformer([("species", OneHotEncoder(handle_unknown="ignore"), ["Species"]), ("sizes", StandardScaler(), list(MEASURES))])
    return make_pipeline(columns, Ridge(alpha=0.1)).fit(table, WEIGHTS)


def save(model: Any, folder: Path, task: str, columns: list[str], *, model_format: str = "skops") -> Path:
    """``model`` in the Hub layout: the model file, config.json's ``sklearn`` section and a card."""
    folder.mkdir(parents=True)
    if model_format == "skops":
        import skops.io

        model_file = "model.skops"
        skops.io.dump(model, folder / model_file)
    else:
        import joblib

        model_file = "model.joblib"
        joblib.dump(model, folder / model_file)
    example = {name: training_table()[name][:3] for name in columns}
    config = {"sklearn": {"columns": columns, "example_input": example, "model": {"file": model_file}, "model_format": "skops" if model_format == "skops" else "pickle", "task": task}}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "README.md").write_text(f"---\nlibrary_name: sklearn\npipeline_tag: {task}\n---\nA tiny test model.\n")
    return folder


def build_models(root: Path) -> dict[str, Path]:
    """Every test model under ``root``: a classifier and a regressor, each as skops and as joblib, and a
    classifier of numbered classes."""
    built = {"classifier-numbered": save(classifier(numbered=True), root / "classifier-numbered", "tabular-classification", list(MEASURES))}
    for format_ in ("skops", "joblib"):
        built[f"classifier-{format_}"] = save(classifier(), root / f"classifier-{format_}", "tabular-classification", list(MEASURES), model_format=format_)
        built[f"regressor-{format_}"] = save(regressor(), root / f"regressor-{format_}", "tabular-regression", ["Species", *MEASURES], model_format=format_)
    return built
