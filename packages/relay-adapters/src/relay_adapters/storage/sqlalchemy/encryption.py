"""Channel and provider secrets encrypted at rest (SPEC S1.1, S13.4).

The SQL repositories seal the columns listed in :data:`SEALED_COLUMNS` on every write and open
them on every read, so the core only ever sees plaintext entities:

* JSON columns (a channel's ``config``, a route's ``integration_config``) are stored as an
  envelope ``{"$enc": "v1:<base64(nonce | ciphertext)>"}`` holding the whole document. Nothing
  queries inside these documents, so the whole-document envelope loses nothing.
* Text columns (a channel's ``callback_secret``) are stored as ``enc:v1:<base64(nonce | ciphertext)>``.

The cipher is AES-256-GCM with a random 96-bit nonce; the associated data is
``relay:<table>.<column>``, so a ciphertext copied into another column does not open. The key is
``main.encryption_key`` (:func:`derive_encryption_key`). Values written before encryption
existed (plain JSON objects, plain strings) are still read as they are; the next write of the row
encrypts them. A value that does not open (the key changed, the value was altered) raises
:class:`SecretsUnreadable`, never garbage.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relay_adapters.storage.sqlalchemy.tables import json_dumps
from relay_core.domain.errors import StorageUnavailable

__all__ = [
    "ENVELOPE_KEY",
    "SEALED_COLUMNS",
    "TEXT_PREFIX",
    "SecretBox",
    "SecretsUnreadable",
    "derive_encryption_key",
]

#: Columns holding secrets, per table: ``"json"`` documents or ``"text"`` values.
SEALED_COLUMNS: Final[Mapping[str, Mapping[str, str]]] = {
    "channels": {"config": "json", "callback_secret": "text"},
    "routes": {"integration_config": "json"},
}

ENVELOPE_KEY: Final = "$enc"
_VERSION: Final = "v1"
TEXT_PREFIX: Final = f"enc:{_VERSION}:"
_NONCE_BYTES: Final = 12
_HKDF_SALT: Final = b"relay secrets at rest"
_HKDF_INFO: Final = b"relay main.encryption_key v1"

_FIX: Final = (
    "main.encryption_key (or main.secret_key, from which it is derived when unset) differs from "
    "the key these secrets were written with: restore the previous value (setting "
    "main.encryption_key to the previous secret_key also works), or re-enter the channel secrets"
)


class SecretsUnreadable(StorageUnavailable):
    """Stored secrets cannot be decrypted with this process's key."""

    code = "secrets_unreadable"


def derive_encryption_key(*, secret_key: str, encryption_key: str = "") -> bytes:
    """The 32-byte AES key: HKDF-SHA256 of ``main.encryption_key``, else of ``main.secret_key``.

    Both are passed through the same derivation, so a deployment that changes ``secret_key``
    keeps reading its secrets by setting ``encryption_key`` to the previous ``secret_key``.
    """
    material = encryption_key or secret_key
    if not material:
        raise ValueError("main.secret_key or main.encryption_key is needed to encrypt secrets at rest")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return hkdf.derive(material.encode("utf-8"))


def _aad(table: str, column: str) -> bytes:
    return f"relay:{table}.{column}".encode()


class SecretBox:
    """Seals and opens the secret columns of one storage factory.

    ``key`` None: nothing is encrypted on write (tools and tests that build a factory without
    settings), and an encrypted value read raises :class:`SecretsUnreadable`.
    """

    def __init__(self, key: bytes | None) -> None:
        if key is not None and len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes (derive_encryption_key)")
        self._aead = AESGCM(key) if key is not None else None

    @property
    def enabled(self) -> bool:
        return self._aead is not None

    # --- raw -------------------------------------------------------------------------------

    def _seal(self, plaintext: bytes, table: str, column: str) -> str:
        assert self._aead is not None
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, _aad(table, column))
        return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def _open(self, token: str, table: str, column: str) -> bytes:
        where = f"{table}.{column}"
        if self._aead is None:
            raise SecretsUnreadable(
                f"{where} holds encrypted secrets but this storage was opened without an encryption "
                "key: pass main.encryption_key/main.secret_key (relay_adapters.compose.make_uow_factory)"
            )
        version, _, body = token.partition(":")
        try:
            if version != _VERSION:
                raise ValueError(f"unknown format {version!r}")
            raw = base64.b64decode(body.encode("ascii"), validate=True)
            if len(raw) <= _NONCE_BYTES:
                raise ValueError("too short")
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(table, column))
        except (InvalidTag, ValueError, binascii.Error, UnicodeError):
            raise SecretsUnreadable(f"{where}: stored secrets cannot be decrypted: {_FIX}") from None

    # --- columns ---------------------------------------------------------------------------

    def seal(self, table: str, column: str, kind: str, value: Any) -> Any:
        """The stored form of ``value`` (unchanged when there is no key, or for None)."""
        if value is None or self._aead is None:
            return value
        if kind == "text":
            return TEXT_PREFIX + self._seal(str(value).encode("utf-8"), table, column)
        document = json_dumps(value)
        return {ENVELOPE_KEY: self._seal(document.encode("utf-8"), table, column)}

    def open(self, table: str, column: str, kind: str, value: Any) -> Any:
        """The plaintext of a stored value; legacy plaintext values are returned as they are."""
        if value is None:
            return None
        if kind == "text":
            if isinstance(value, str) and value.startswith(TEXT_PREFIX):
                return self._open(value[len(TEXT_PREFIX) :], table, column).decode("utf-8")
            return value
        if isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get(ENVELOPE_KEY), str):
            return json.loads(self._open(value[ENVELOPE_KEY], table, column))
        return value
