"""``python -m widgetd_transformers.tiny_chat FOLDER``: a chat model to try widgetd's chat API with no network.

It is a two-layer Llama with random weights and a ChatML template, built as the tests build theirs: it
answers in real words that mean nothing. It exists to try the API (streaming, stop sequences, the OpenAI
SDK, the widget page), never to judge answers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from widgetd_transformers.testing import save_byte_level_bpe, save_chat_llama

NOTICE = (
    "\nA two-layer Llama with **random weights**, made by `python -m widgetd_transformers.tiny_chat`, for trying "
    "widgetd's chat API offline. Its answers are words without meaning.\n"
)


def write_tiny_chat(folder: Path) -> Path:
    """The model, saved with ``save_pretrained`` into ``folder`` (which must not exist yet)."""
    if folder.exists():
        raise FileExistsError(f"{folder} exists; name a new folder")
    with tempfile.TemporaryDirectory() as scratch:
        save_chat_llama(folder, save_byte_level_bpe(Path(scratch) / "bpe"))
    with (folder / "README.md").open("a", encoding="utf-8") as card:
        card.write(NOTICE)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m widgetd_transformers.tiny_chat", description="Write a tiny chat model with random weights, for trying the API offline."
    )
    parser.add_argument("folder", type=Path, help="where to write it (a new folder)")
    arguments = parser.parse_args(argv)
    try:
        folder = write_tiny_chat(arguments.folder)
    except FileExistsError as error:
        parser.error(str(error))
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    print(f"wrote {folder} ({size / 1e6:.1f} MB, random weights: for trying the API, its answers mean nothing)")
    print(f"serve it: widgetd serve --model-id {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
