"""The sklearn plugin over HTTP: answers equal scikit-learn's own predict, tables are read by column name, and
nothing runs a model file's code without --trust-remote-code."""

from __future__ import annotations

import operator

import httpx
import pandas
import pytest
import skops.io

import widgetd_sklearn
from widgetd import ModelResolutionError
from widgetd.settings import ServerSettings
from widgetd.testing.process import ServeProcess
from widgetd.testing.server import LiveServer
from widgetd_sklearn.testing import FISH, MEASURES, save, training_table

ROWS = {name: cells[:8] for name, cells in FISH.items()}


def serve(*folders, trust: bool = False) -> LiveServer:
    return LiveServer.for_models([str(folder) for folder in folders], plugins={"sklearn": widgetd_sklearn}, settings=ServerSettings(trust_remote_code=trust))


def predict_locally(folder, table, trusted=("sklearn.tree._tree.Tree",)):
    model = skops.io.load(folder / "model.skops", trusted=list(trusted))
    return model.predict(pandas.DataFrame(table)[list(model.feature_names_in_)]).tolist()


def post(server, model_id, body):
    return httpx.post(f"{server.url}/models/{model_id}", json=body, timeout=30)


def test_answers_are_scikit_learns_own_predictions_in_row_order(model_dirs):
    classifier, regressor = model_dirs["classifier-skops"], model_dirs["regressor-skops"]
    with serve(classifier, regressor) as server:
        species = post(server, "classifier-skops", {"inputs": {"data": {name: ROWS[name] for name in MEASURES}}})
        weights = post(server, "regressor-skops", {"inputs": {"data": ROWS}})
    assert species.json() == predict_locally(classifier, {name: ROWS[name] for name in MEASURES})
    assert weights.json() == pytest.approx(predict_locally(regressor, ROWS), rel=1e-9)


def test_text_cells_columns_in_any_order_and_missing_values(model_dirs):
    """The Python client's text cells are read as numbers; columns are matched by name; null is a missing value,
    which a ridge regression cannot read: a 400 saying so, and the server goes on serving."""
    with serve(model_dirs["classifier-skops"], model_dirs["regressor-skops"]) as server:
        as_numbers = post(server, "classifier-skops", {"inputs": {"data": {name: ROWS[name] for name in MEASURES}}}).json()
        as_text = post(server, "classifier-skops", {"table": {name: [str(cell) for cell in ROWS[name]] for name in reversed(MEASURES)}}).json()
        missing = post(server, "regressor-skops", {"inputs": {"data": {"Species": ["Pike"], "Length": [None], "Height": [1.0], "Width": [1.0]}}})
        after = post(server, "classifier-skops", {"inputs": {"data": {name: ROWS[name][:1] for name in MEASURES}}})
    assert as_text == as_numbers
    assert missing.status_code == 400 and "NaN" in missing.json()["error"]
    assert after.status_code == 200 and after.json() == as_numbers[:1]


@pytest.mark.parametrize(
    ("table", "field", "says"),
    [
        ({"Length": [1.0], "Height": [1.0]}, "inputs.data.Width", "lacks column 'Width'"),
        ({"Length": [1.0], "Height": [1.0], "Width": [1.0], "Age": [3]}, "inputs.data.Age", "'Age' is not one the model reads"),
        ({"Length": ["long"], "Height": [1.0], "Width": [1.0]}, "inputs.data.Length", "column 'Length' holds numbers, but row 0 is 'long'"),
        ({"Length": [True], "Height": [1.0], "Width": [1.0]}, "inputs.data.Length", "holds numbers"),
        ({"Length": [1.0, 2.0], "Height": [1.0], "Width": [1.0]}, None, "as many rows"),
    ],
)
def test_column_mistakes_are_400s_naming_the_column(model_dirs, table, field, says):
    with serve(model_dirs["classifier-skops"]) as server:
        reply = post(server, "classifier-skops", {"inputs": {"data": table}})
    assert reply.status_code == 400 and says in reply.json()["error"], reply.text
    if field:
        assert reply.json()["field"] == field


def test_a_pickle_loads_only_with_trust_remote_code(model_dirs):
    with pytest.raises(ModelResolutionError, match="pickle file .*--trust-remote-code"):
        serve(model_dirs["classifier-joblib"]).__enter__()
    with serve(model_dirs["classifier-joblib"], model_dirs["classifier-skops"], trust=True) as server:
        body = {"inputs": {"data": {name: ROWS[name] for name in MEASURES}}}
        assert post(server, "classifier-joblib", body).json() == post(server, "classifier-skops", body).json()


def test_a_pickle_is_refused_before_it_is_downloaded(local_hub, hub_env, model_dirs):
    local_hub.publish("fish/species-joblib", model_dirs["classifier-joblib"])
    local_hub.clear_log()
    process = ServeProcess(["--model-id", "fish/species-joblib"], {**hub_env, "WIDGETD_LOAD_PLUGINS": "sklearn"})
    assert process.wait_exit(timeout=120) == 1
    assert "model.joblib" in process.output and "--trust-remote-code" in process.output and "skops" in process.output
    assert "Traceback" not in process.output
    assert not [path for method, path in local_hub.requests if path.endswith("model.joblib")]


def test_a_skops_file_with_types_from_elsewhere_is_refused_naming_them(tmp_path):
    """FunctionTransformer(operator.neg): building it imports a function of another library, so the operator
    must trust it; scikit-learn's own types (a forest's Tree) need no trust."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    table = pandas.DataFrame(training_table())[list(MEASURES)]
    model = make_pipeline(FunctionTransformer(operator.neg), LinearRegression()).fit(table, range(len(table)))
    folder = save(model, tmp_path / "negated", "tabular-regression", list(MEASURES))
    # The file is read when the model loads: the model fails to load, saying why.
    with pytest.raises(RuntimeError, match=r"_operator\.neg.*--trust-remote-code"):
        serve(folder).__enter__()
    with serve(folder, trust=True) as server:
        reply = post(server, "negated", {"inputs": {"data": {name: ROWS[name][:2] for name in MEASURES}}})
    assert reply.status_code == 200 and len(reply.json()) == 2


def test_rows_of_many_requests_are_predicted_in_one_batch(model_dirs):
    from concurrent.futures import ThreadPoolExecutor

    with serve(model_dirs["regressor-skops"]) as server:
        bodies = [{"inputs": {"data": {name: [cells[index]] for name, cells in ROWS.items()}}} for index in range(8)]
        alone = [post(server, "regressor-skops", body).json() for body in bodies]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda body: post(server, "regressor-skops", body).json(), bodies * 4))
    assert [answer[0] for answer in together] == pytest.approx([answer[0] for answer in alone] * 4, rel=1e-9)
