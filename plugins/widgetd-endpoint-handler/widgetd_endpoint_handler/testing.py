"""Handler repos for tests, each a folder as a Hub repo holds it: a ``handler.py`` (or ``pipeline.py``),
the modules and files beside it, tiny transformers models where the handler runs some, and a card.

``build_repos(root)`` returns {name: folder}. The handlers are written as Inference Endpoints users
write them (``EndpointHandler(path)``, ``__call__(data)``) and would run in the toolkit too.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from typing import Callable

SPEECH_HANDLER = '''
import base64
import io

import soundfile
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline


class EndpointHandler:
    """Transcribes audio (bytes, or base64 in JSON) and summarizes the transcript."""

    def __init__(self, path=""):
        self.asr = pipeline("automatic-speech-recognition", model=f"{path}/asr", device="cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(f"{path}/summarizer")
        self.summarizer = AutoModelForSeq2SeqLM.from_pretrained(f"{path}/summarizer").eval()

    def __call__(self, data):
        inputs = data.pop("inputs", data)
        parameters = data.pop("parameters", {}) or {}
        audio = inputs if isinstance(inputs, (bytes, bytearray)) else base64.b64decode(inputs)
        samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        text = self.asr({"raw": samples, "sampling_rate": rate})["text"]
        return {"text": text, "summary": self.summarize(text, parameters.get("max_summary_tokens", 8))}

    def summarize(self, text, max_new_tokens):
        ids = self.tokenizer(text or "the", truncation=True, max_length=64, return_tensors="pt").input_ids
        generated = self.summarizer.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        return self.tokenizer.decode(generated[0], skip_special_tokens=True)
'''

CUSTOM_HANDLER = '''
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from text_tools import shout


class EndpointHandler:
    """Its own JSON in and out; reads a file of its repo and imports a module beside it."""

    def __init__(self, path=""):
        self.greeting = (Path(path) / "greeting.txt").read_text().strip()
        self.lock, self.running, self.most_at_once = threading.Lock(), 0, 0

    def __call__(self, data):
        if "text" in data:
            times = int(data.get("times", 1))
            return {"shouted": shout(data["text"], times), "greeting": self.greeting, "lengths": np.arange(times)}
        inputs = data["inputs"]
        parameters = data.get("parameters", {})
        if isinstance(inputs, Image.Image):
            return {"image_size": list(inputs.size)}
        if isinstance(inputs, bytes):
            return inputs[::-1]
        if inputs == "bad":
            raise ValueError("inputs must not be 'bad'")
        if inputs == "crash":
            raise RuntimeError("the handler broke on purpose")
        if inputs == "slow":
            return self.slowly()
        if parameters.get("as") == "image":
            return Image.new("RGB", (3, 2), (200, 10, 10))
        if parameters.get("as") == "bytes":
            return inputs.encode()
        return {"echo": inputs, "parameters": parameters}

    def slowly(self):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.2)
        with self.lock:
            self.running -= 1
        return {"most_at_once": self.most_at_once}
'''

TEXT_TOOLS = '''
def shout(text, times):
    return " ".join([text.upper() + "!"] * times)
'''

CLASSIFIER_HANDLER = '''
from transformers import pipeline


class EndpointHandler:
    """The toolkit's default handler for text-classification, written out."""

    def __init__(self, path=""):
        self.pipeline = pipeline("text-classification", model=path, device="cpu")
        # The tokenizer claims more positions than the model has (as many Hub repos' do): truncate to the model's.
        self.pipeline.tokenizer.model_max_length = self.pipeline.model.config.max_position_embeddings

    def __call__(self, data):
        inputs = data.pop("inputs", data)
        parameters = {"top_k": None, **(data.pop("parameters", None) or {})}
        return self.pipeline(inputs, truncation=True, **parameters)
'''

WRONG_SHAPE_HANDLER = '''
class EndpointHandler:
    """Answers one label as a bare object, where text-classification answers a list of labels."""

    def __init__(self, path=""):
        pass

    def __call__(self, data):
        return {"label": "POSITIVE", "score": "high"}
'''

LEGACY_PIPELINE = '''
from typing import Dict, List


class PreTrainedPipeline:
    """api-inference-community's convention: called with the inputs, and the parameters as keywords."""

    def __init__(self, path: str):
        self.words = open(f"{path}/labels.txt").read().split()

    def __call__(self, inputs: str, top_k: int = 2) -> List[Dict]:
        scored = sorted(((word, 1 / (1 + abs(len(word) - len(inputs)))) for word in self.words), key=lambda p: -p[1])
        total = sum(score for _, score in scored)
        return [{"label": word, "score": score / total} for word, score in scored[:top_k]]
'''


def card_text(pipeline_tag: str | None, library: str | None = None) -> str:
    lines = [f"library_name: {library}" if library else "", f"pipeline_tag: {pipeline_tag}" if pipeline_tag else ""]
    return "---\n" + "".join(line + "\n" for line in lines if line) + "tags:\n- endpoints-template\n---\n"


def write_repo(folder: Path, files: dict[str, str], pipeline_tag: str | None, library: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(dedent(text).lstrip())
    (folder / "README.md").write_text(card_text(pipeline_tag, library))
    return folder


def save_speech_repo(folder: Path) -> Path:
    """ASR + summarization on tiny transformers models in sub-folders; the card says transformers, as such repos' cards do."""
    from widgetd_transformers.testing import save_bart, save_byte_level_bpe, save_wav2vec2

    save_wav2vec2(folder / "asr")
    save_bart(folder / "summarizer", "summarization", save_byte_level_bpe(folder.parent / f"{folder.name}-bpe"))
    return write_repo(folder, {"handler.py": SPEECH_HANDLER}, "automatic-speech-recognition", library="transformers")


def save_custom_repo(folder: Path) -> Path:
    return write_repo(
        folder, {"handler.py": CUSTOM_HANDLER, "text_tools.py": TEXT_TOOLS, "greeting.txt": "hello from the repo\n"}, None
    )


def save_classifier_repo(folder: Path) -> Path:
    """A tiny BERT sentiment classifier with the toolkit's handler beside it."""
    from transformers import BertForSequenceClassification
    from widgetd_transformers.testing import save_bert

    save_bert(folder, BertForSequenceClassification, "text-classification", labels=["NEGATIVE", "NEUTRAL", "POSITIVE"])
    return write_repo(folder, {"handler.py": CLASSIFIER_HANDLER}, "text-classification", library="transformers")


def save_wrong_shape_repo(folder: Path) -> Path:
    return write_repo(folder, {"handler.py": WRONG_SHAPE_HANDLER}, "text-classification")


def save_legacy_repo(folder: Path) -> Path:
    return write_repo(folder, {"pipeline.py": LEGACY_PIPELINE, "labels.txt": "cat dog horse elephant\n"}, "text-classification")


def save_unmet_requirements_repo(folder: Path) -> Path:
    requirements = "numpy>=1.0\nwidgetd-no-such-package==1.2.3\npackaging<1.0  # far too old\n"
    return write_repo(folder, {"handler.py": WRONG_SHAPE_HANDLER, "requirements.txt": requirements}, "text-classification")


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "speech": save_speech_repo,
    "custom": save_custom_repo,
    "classifier": save_classifier_repo,
    "wrong-shape": save_wrong_shape_repo,
    "legacy": save_legacy_repo,
    "unmet-requirements": save_unmet_requirements_repo,
}


def build_repos(root: Path) -> dict[str, Path]:
    """Every handler repo, saved under ``root``, by name."""
    return {name: build(root / name) for name, build in BUILDERS.items()}
