"""A tiny sentence-transformers model (random BERT + mean pooling), for tests here and in widgetd's client suites."""

from __future__ import annotations

from pathlib import Path


WORDS = (
    "a man is eating food bread piece of the new movie awesome cat dog sat on mat "
    "query passage hello world good bad"
).split()
CARD = {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity"}


def build_tiny_sentence_transformer(folder: Path, *, max_seq_length: int = 32, exported: bool = False) -> Path:
    """A random-weight BERT + mean pooling, saved the way the Hub stores sentence-transformers models.

    ``exported``: with the exports the Hub's repos ship (``onnx/model.onnx``, and an OpenVINO model with
    int8 weights); otherwise with a stand-in ``onnx/model.onnx`` that a torch server must not download."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast
    import torch

    torch.manual_seed(0)
    bert = folder / "bert"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz.,!?"]
    bert.mkdir(parents=True)
    (bert / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast.from_pretrained(str(bert)).save_pretrained(str(bert))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(bert))
    transformer = Transformer(str(bert), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    model = SentenceTransformer(
        modules=[transformer, pooling], prompts={"query": "query: ", "passage": "passage: "}
    )
    saved = folder / "model"
    model.save(str(saved))
    (saved / "onnx").mkdir()
    if exported:
        _add_onnx_exports(model, saved)
    else:
        # Other runtimes' copies, which a torch server must not download.
        (saved / "onnx" / "model.onnx").write_bytes(b"not needed")
    (saved / "pytorch_model.bin").write_bytes(b"not needed beside model.safetensors")
    return saved


def _add_onnx_exports(model, saved: Path) -> None:
    from widgetd.graphs import OPENVINO_INT8_MODEL, compress_to_int8
    from widgetd_sentence_transformers.runtimes import export_transformer

    export_transformer(model, saved / "onnx" / "model.onnx")
    (saved / "openvino").mkdir()
    compress_to_int8(saved / "onnx" / "model.onnx", saved / OPENVINO_INT8_MODEL)
