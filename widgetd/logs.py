"""Logs that never show a secret: the HF token and the API key are masked in every log record.

Masking happens where records are made (``logging.setLogRecordFactory``), so it covers every logger
and handler, uvicorn's and the plugins' included, and the text of tracebacks: a Hub error that
echoes the request's headers cannot carry the token into the log.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable

MASK = "***"
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN", "HF_HUB_TOKEN")


def known_secrets(*keys: str | None) -> list[str]:
    """The server's keys given and every Hugging Face token this process could send."""
    secrets = [*keys, *(os.environ.get(name) for name in TOKEN_VARIABLES)]
    try:
        from huggingface_hub import get_token

        secrets.append(get_token())
    except Exception:
        pass
    return sorted({secret for secret in secrets if secret and len(secret) >= 4}, key=len, reverse=True)


def masked(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


_MASKED: list[str] = []
"""What every log record has masked, longest first (a key that contains another is masked whole)."""


def mask_secrets_in_logs(secrets: Iterable[str]) -> None:
    """From now on, every log record this process makes has ``secrets`` masked (and those masked before)."""
    new = [secret for secret in secrets if secret and len(secret) >= 4 and secret not in _MASKED]
    if not new:
        return
    first = not _MASKED
    _MASKED.extend(new)
    _MASKED.sort(key=len, reverse=True)
    if first:
        _mask_every_record()


def _mask_every_record() -> None:
    make_record = logging.getLogRecordFactory()

    def masked_value(value: Any) -> Any:
        text = value if isinstance(value, str) else str(value)
        hidden = masked(text, _MASKED)
        return value if hidden == text else hidden

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg = masked_value(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(masked_value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: masked_value(arg) for key, arg in record.args.items()}
        if record.exc_info:
            record.exc_text = masked(logging.Formatter().formatException(record.exc_info), _MASKED)
        if record.stack_info:
            record.stack_info = masked(record.stack_info, _MASKED)
        return record

    logging.setLogRecordFactory(masked_record)
