"""LitServe with its dynamic batching around sentence-transformers: the server users would write with it.

Run in its own virtualenv (litserve, sentence-transformers):
    MODEL_ID=/path/to/model PORT=8000 python litserve_app.py
POST /v1/embeddings {"input": [str, ...]} answers {"data": [{"embedding": [...]}, ...]}.
"""

import os

import litserve as ls
from sentence_transformers import SentenceTransformer


class Embeddings(ls.LitAPI):
    def setup(self, device):
        self.model = SentenceTransformer(os.environ["MODEL_ID"], device=device)

    def decode_request(self, request):
        return request["input"]

    def predict(self, batch):
        texts = [text for request in batch for text in request]
        vectors = iter(self.model.encode(texts, batch_size=64, normalize_embeddings=True).tolist())
        return [[next(vectors) for _ in request] for request in batch]

    def encode_response(self, output):
        return {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(output)]}


if __name__ == "__main__":
    api = Embeddings(max_batch_size=32, batch_timeout=0.005, api_path="/v1/embeddings")
    ls.LitServer(api, accelerator="cpu").run(port=int(os.environ["PORT"]), log_level="warning", generate_client_file=False)
