"""Who may do what: API keys and their scopes.

Two scopes: ``inference`` (call models, read /info, /models and /metrics) and ``admin`` (load, reload and
unload models; an admin key may call models too). Keys come from ``--api-key`` (inference), ``--admin-key``
(admin) and a keys file (``--keys-file``, re-read on SIGHUP)::

    [[keys]]
    name = "search-backend"     # who: the name audit lines and metrics show; the key itself never is
    key = "..."                 # or sha256 = "<hex digest of the key>", so the file holds no secret
    scopes = ["inference"]

Keys are kept as SHA-256 digests and a presented key is compared with every one of them in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import msgspec

from widgetd.deprecation import deprecated
from widgetd.errors import WidgetdError

INFERENCE = "inference"
ADMIN = "admin"
SCOPES = (INFERENCE, ADMIN)

log = logging.getLogger("widgetd")


class KeysFileError(WidgetdError):
    """The keys file cannot be read or holds an entry that is wrong; says which."""


@dataclass(frozen=True)
class Key:
    name: str
    digest: bytes
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes


class KeyEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    scopes: list[str]
    key: str | None = None
    sha256: str | None = None


class KeysFile(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[KeyEntry] = msgspec.field(default_factory=list)


def digest_of(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def read_keys_file(path: str | Path) -> tuple[list[Key], list[str]]:
    """The keys a keys file holds, and the secrets written in it in clear (to mask in logs)."""
    where = f"keys file {path}"
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        entries = msgspec.convert(document, KeysFile).keys
    except OSError as error:
        raise KeysFileError(f"{where} cannot be read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise KeysFileError(f"{where} is not valid TOML: {error}") from None
    except msgspec.ValidationError as error:
        raise KeysFileError(f"{where}: {error} (each [[keys]] has name, scopes and key or sha256)") from None
    keys = [_key_of(entry, f"{where}, key {number} ({entry.name!r})") for number, entry in enumerate(entries, 1)]
    names = [key.name for key in keys]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise KeysFileError(f"{where}: the name {repeated[0]!r} is given to more than one key; audit lines tell keys apart by name")
    return keys, [entry.key for entry in entries if entry.key]


def _key_of(entry: KeyEntry, where: str) -> Key:
    if unknown := [scope for scope in entry.scopes if scope not in SCOPES]:
        raise KeysFileError(f"{where}: unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    if not entry.scopes:
        raise KeysFileError(f"{where}: no scopes; give it {INFERENCE!r}, {ADMIN!r} or both")
    if (entry.key is None) == (entry.sha256 is None):
        raise KeysFileError(f"{where}: give it either key or sha256, not {'both' if entry.key else 'neither'}")
    if entry.key is not None:
        if not entry.key.strip():
            raise KeysFileError(f"{where}: the key is empty")
        return Key(entry.name, digest_of(entry.key), frozenset(entry.scopes))
    try:
        digest = bytes.fromhex(entry.sha256 or "")
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise KeysFileError(f"{where}: sha256 must be 64 hex digits (printf %s KEY | sha256sum)")
    return Key(entry.name, digest, frozenset(entry.scopes))


class Keyring:
    """The keys a server accepts. Without any, every route is open and the admin API is off."""

    def __init__(self, keys: Iterable[Key] = (), keys_file: str | None = None, fixed: Iterable[Key] = ()) -> None:
        self.fixed = tuple(fixed)
        self.keys_file = keys_file
        self.keys = (*self.fixed, *keys)

    @classmethod
    def of(cls, api_key: str | None = None, admin_key: str | None = None, keys_file: str | None = None) -> Keyring:
        """The keys of ``--api-key``, ``--admin-key`` and ``--keys-file``. An ``--api-key`` alone, with no admin
        key anywhere, keeps opening the admin API as it did before scopes existed (with a warning)."""
        from_file = read_keys_file(keys_file)[0] if keys_file else []
        admin_elsewhere = admin_key is not None or any(ADMIN in key.scopes for key in from_file)
        fixed = []
        if api_key:
            legacy = not admin_elsewhere
            fixed.append(Key("api-key", digest_of(api_key), frozenset((INFERENCE, ADMIN) if legacy else (INFERENCE,))))
            if legacy:
                deprecated("--api-key opening the admin API", "0.3", "add --admin-key (or an admin key in --keys-file) to manage models; --api-key will then call models only", stacklevel=2)
        if admin_key:
            fixed.append(Key("admin-key", digest_of(admin_key), frozenset((ADMIN,))))
        return cls(from_file, keys_file, fixed)

    @property
    def required(self) -> bool:
        return bool(self.keys)

    @property
    def admin_open(self) -> bool:
        return any(ADMIN in key.scopes for key in self.keys)

    def holder(self, authorization: str) -> Key | None:
        """The key an ``Authorization: Bearer KEY`` header presents, or None. Every key is compared, each in
        constant time, so the time taken says nothing about which key came close."""
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        digest = digest_of(presented.strip())
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, digest) and found is None:
                found = key
        return found

    def reload(self) -> list[str]:
        """Read the keys file again (SIGHUP). A file that is wrong changes nothing: the error is logged and the
        keys in use stay. Returns the file's clear secrets, to mask in logs."""
        if not self.keys_file:
            log.warning("SIGHUP: no --keys-file to read again; keys from --api-key and --admin-key change with a restart")
            return []
        try:
            keys, secrets = read_keys_file(self.keys_file)
        except KeysFileError as error:
            log.error("SIGHUP: %s; the %d keys in use stay", error, len(self.keys))
            return []
        self.keys = (*self.fixed, *keys)
        log.info("SIGHUP: %d keys from %s (%s)", len(keys), self.keys_file, ", ".join(key.name for key in keys) or "none")
        return secrets
