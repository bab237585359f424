"""The transformers backend: which task runner answers which task, and loading a snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from widgetd import Backend, ModelResolutionError, ModelSnapshot
from widgetd.backends import PlannedModel, pytorch_files
from widgetd_transformers import audio, documents, generation, question_answering, runtimes, speech, tables, text, vision
from widgetd_transformers.continuous import placement_of

RUNNERS: dict[str, Callable[[ModelSnapshot], Callable[[Sequence[Any]], list[Any]]]] = {
    "question-answering": question_answering.QuestionAnswering.load,
    "table-question-answering": tables.TableQuestionAnswering.load,
    "document-question-answering": documents.DocumentQuestionAnswering.load,
    "token-classification": text.TokenClassification.load,
    "text-classification": text.TextClassification.load,
    "zero-shot-classification": text.ZeroShotClassification.load,
    "fill-mask": text.FillMask.load,
    "feature-extraction": text.FeatureExtraction.load,
    "automatic-speech-recognition": audio.SpeechRecognition.load,
    "audio-classification": audio.AudioClassification.load,
    "zero-shot-audio-classification": audio.ZeroShotAudioClassification.load,
    "image-classification": vision.ImageClassification.load,
    "zero-shot-image-classification": vision.ZeroShotImageClassification.load,
    "object-detection": vision.ObjectDetection.load,
    "image-segmentation": vision.ImageSegmentation.load,
    "image-to-text": vision.ImageToText.load,
    "depth-estimation": vision.DepthEstimation.load,
    "image-to-image": vision.ImageToImage.load,
    "visual-question-answering": vision.VisualQuestionAnswering.load,
    "summarization": generation.Summarization,
    "translation": generation.Translation,
    "text-generation": generation.TextGeneration.load,
    "text-to-speech": speech.TextToSpeech.load,
}


class TransformersPipeline:
    """One loaded model answering the task its card names."""

    def __init__(self, task: str, runner: Callable[[Sequence[Any]], list[Any]]) -> None:
        self.tasks = (task,)
        self.runner = runner
        self.engine = getattr(runner, "engine", None)
        """Causal language models generate with continuous batching (``widgetd.generating``)."""
        model = getattr(self.engine, "model", None) or getattr(runner, "model", None)
        self.placement = placement_of(model) if model is not None else None

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]:
        return self.runner(requests)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The tokens ``texts`` are read as, special tokens included (for usage reports)."""
        tokenizer = self.runner.tokenizer
        return sum(len(ids) for ids in tokenizer(list(texts), truncation=True)["input_ids"])


def load(snapshot: ModelSnapshot) -> TransformersPipeline:
    pipeline = TransformersPipeline(snapshot.task, RUNNERS[snapshot.task](snapshot))
    pipeline.runtime = runtimes.describe(snapshot)
    return pipeline


ARCHITECTURE_TASKS = (
    ("TapasForQuestionAnswering", "table-question-answering"),
    ("ViltForQuestionAnswering", "visual-question-answering"),
    ("BlipForQuestionAnswering", "visual-question-answering"),
    ("LayoutLMForQuestionAnswering", "document-question-answering"),
    ("LayoutLMv2ForQuestionAnswering", "document-question-answering"),
    ("LayoutLMv3ForQuestionAnswering", "document-question-answering"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForTokenClassification", "token-classification"),
    ("ForSequenceClassification", "text-classification"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForAudioClassification", "audio-classification"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("WhisperForConditionalGeneration", "automatic-speech-recognition"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForDepthEstimation", "depth-estimation"),
    ("ForImageSuperResolution", "image-to-image"),
    ("ForSemanticSegmentation", "image-segmentation"),
    ("ForUniversalSegmentation", "image-segmentation"),
    ("ForInstanceSegmentation", "image-segmentation"),
    ("ForSegmentation", "image-segmentation"),
    ("VisionEncoderDecoderModel", "image-to-text"),
    ("BlipForConditionalGeneration", "image-to-text"),
    ("GitForCausalLM", "image-to-text"),
    ("Pix2StructForConditionalGeneration", "image-to-text"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "summarization"),
    ("VitsModel", "text-to-speech"),
    ("CLIPModel", "zero-shot-image-classification"),
    ("SiglipModel", "zero-shot-image-classification"),
    ("ClapModel", "zero-shot-audio-classification"),
    ("Model", "feature-extraction"),
)
"""Architecture name endings and their task, most specific first."""


def infer_task(path: Path) -> str | None:
    """The task of a model folder whose card names none, from config.json's architectures."""
    try:
        architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return None
    for ending, task in ARCHITECTURE_TASKS:
        if any(name.endswith(ending) for name in architectures):
            return task
    return None


def recognizes(repo_files: Sequence[str]) -> bool:
    return "config.json" in repo_files and "modules.json" not in repo_files


def check(model: PlannedModel) -> None:
    """A model whose architecture is its repo's own code (``auto_map``, a ``model_type`` transformers does not
    know) stops startup without ``--trust-remote-code``, before anything is downloaded; so does a runtime
    this model's task or this machine cannot have."""
    runtimes.check_runtime(model)
    if model.trust_remote_code or "config.json" not in model.files:
        return
    try:
        config = json.loads(model.read_text("config.json"))
    except ValueError:
        return  # loading says what is wrong with it
    if not isinstance(config, dict) or not config.get("auto_map"):
        return
    from transformers import CONFIG_MAPPING

    if config.get("model_type") in CONFIG_MAPPING:
        return  # transformers has the architecture itself and uses it, without the repo's code
    code = sorted({str(target).split(".")[0] + ".py" for target in _auto_map_targets(config["auto_map"])})
    raise ModelResolutionError(
        f"model {model.model_id!r} is built by its own code ({', '.join(code)}, model_type "
        f"{config.get('model_type')!r}), which runs only with --trust-remote-code (or HF_TRUST_REMOTE_CODE=1); "
        "read it first, since it runs with this server's rights"
    )


def _auto_map_targets(auto_map: Any) -> list[str]:
    targets = []
    for target in (auto_map.values() if isinstance(auto_map, dict) else []):
        targets.extend(item for item in (target if isinstance(target, list) else [target]) if item)
    return [target.split("--")[-1] for target in targets]


BACKEND = Backend(
    name="transformers",
    library="transformers",
    tasks=tuple(RUNNERS),
    load=load,
    files=pytorch_files,
    recognizes=recognizes,
    max_batch_size=16,
    infer_task=infer_task,
    check=check,
    runtimes=runtimes.RUNTIMES,
    runtime_files=runtimes.runtime_files,
)
