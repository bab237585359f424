"""api-inference-community serving a sentence-transformers model the way its docker image does.

Run in its own virtualenv (api-inference-community 0.0.37 and the image's pinned libraries):
    MODEL_ID=/path/to/model TASK=sentence-similarity python -m uvicorn aic_app:app   # or TASK=feature-extraction
Like the image, the pipeline runs inside the request handler, on the event loop.
"""

import functools
import os

from api_inference_community.routes import pipeline_route, status_ok
from sentence_transformers import SentenceTransformer, util
from starlette.applications import Starlette
from starlette.routing import Route


class SentenceSimilarityPipeline:
    def __init__(self, model_id: str) -> None:
        self.model = SentenceTransformer(model_id)

    def __call__(self, inputs: dict) -> list:
        source = self.model.encode(inputs["source_sentence"], convert_to_tensor=True)
        sentences = self.model.encode(inputs["sentences"], convert_to_tensor=True)
        return util.pytorch_cos_sim(source, sentences).tolist()[0]


class FeatureExtractionPipeline:
    def __init__(self, model_id: str) -> None:
        self.model = SentenceTransformer(model_id)

    def __call__(self, inputs) -> list:
        return self.model.encode(inputs).tolist()


PIPELINES = {"sentence-similarity": SentenceSimilarityPipeline, "feature-extraction": FeatureExtractionPipeline}


@functools.lru_cache()
def get_pipeline():
    return PIPELINES[os.environ["TASK"]](os.environ["MODEL_ID"])


app = Starlette(
    routes=[Route("/{whatever:path}", status_ok), Route("/{whatever:path}", pipeline_route, methods=["POST"])],
    on_startup=[get_pipeline],
)
app.get_pipeline = get_pipeline
