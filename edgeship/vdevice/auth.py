"""adbd's AUTH handshake (``ro.adb.secure=1``): tokens, signatures, the "Allow USB debugging?" prompt.

Modes, per device:

- ``none``: ``ro.adb.secure=0``; the device answers CNXN with CNXN and never asks for AUTH (adbd's
  ``auth_required=false``).
- ``deny``: the device answers CNXN with ``AUTH(TOKEN, 0, 20 random bytes)``; a SIGNATURE that does not verify
  gets a fresh TOKEN and an RSAPUBLICKEY shows a prompt nobody answers, so the host lists it ``unauthorized``.
- ``allow``: like ``deny``, but the prompt is answered "Allow" at once: the key is remembered (in
  ``<root>/adb_keys``, like /data/misc/adb/adb_keys) and the device sends its CNXN. On later connections the
  host's SIGNATURE over the token verifies against a remembered key, so no prompt is needed.

The signature check is adbd's ``RSA_verify(NID_sha1, token, ...)``: PKCS#1 v1.5 with the 20-byte token taken
as the SHA-1 digest. It is done with Python integers (no crypto library needed): verification is only a
modular exponentiation with a public exponent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import UsageError

AUTH_MODES = ("none", "deny", "allow")

# adb_auth.h
AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3
TOKEN_SIZE = 20

# crypto_utils/android_pubkey.h: a 2048-bit key as {u32 words, u32 n0inv, modulus LE, rr LE, u32 exponent}.
ANDROID_PUBKEY_MODULUS_SIZE = 2048 // 8
ANDROID_PUBKEY_ENCODED_SIZE = 3 * 4 + 2 * ANDROID_PUBKEY_MODULUS_SIZE
# DER DigestInfo prefix for SHA-1 (RFC 8017 §9.2 note 1): what RSA_sign(NID_sha1) puts before the digest.
SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")
# adbd sleeps a second per failed signature after this many on one connection (a brute-force brake).
MAX_FAST_FAILED_ATTEMPTS = 256

KEYS_FILE = "adb_keys"


def validate_mode(mode: str) -> str:
    if mode not in AUTH_MODES:
        raise UsageError(
            f"unknown auth mode {mode!r} for a virtual device (use one of: {', '.join(AUTH_MODES)})"
        )
    return mode


@dataclass(frozen=True)
class PublicKey:
    """A host's adb key: the RSA modulus and exponent, and the text line the host sent ("<b64> user@host")."""

    modulus: int
    exponent: int
    line: str

    def verifies(self, token: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's PKCS#1 v1.5 signature of ``token`` as a SHA-1 digest."""
        if len(signature) != ANDROID_PUBKEY_MODULUS_SIZE:
            return False
        value = int.from_bytes(signature, "big")
        if value >= self.modulus:
            return False
        decoded = pow(value, self.exponent, self.modulus).to_bytes(ANDROID_PUBKEY_MODULUS_SIZE, "big")
        padding = ANDROID_PUBKEY_MODULUS_SIZE - 3 - len(SHA1_DIGEST_INFO) - len(token)
        expected = b"\x00\x01" + b"\xff" * padding + b"\x00" + SHA1_DIGEST_INFO + token
        return hmac.compare_digest(decoded, expected)


def parse_public_key(text: str) -> PublicKey | None:
    """Decode an adb public key line ("<base64 android_pubkey> [comment]"); None if it is not one."""
    fields = text.strip().split(None, 1)
    if not fields:
        return None
    try:
        raw = base64.b64decode(fields[0], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != ANDROID_PUBKEY_ENCODED_SIZE:
        return None
    words = int.from_bytes(raw[0:4], "little")
    if words != ANDROID_PUBKEY_MODULUS_SIZE // 4:
        return None
    modulus = int.from_bytes(raw[8 : 8 + ANDROID_PUBKEY_MODULUS_SIZE], "little")
    exponent = int.from_bytes(raw[-4:], "little")
    # android_pubkey_decode takes any exponent, but 0/1/even ones make no RSA key (and pow() must stay cheap).
    if modulus.bit_length() != 2048 or exponent < 3 or exponent % 2 == 0 or exponent.bit_length() > 32:
        return None
    return PublicKey(modulus=modulus, exponent=exponent, line=text.strip())


class DeviceAuth:
    """One device's AUTH policy and the host keys it trusts (shared by all its connections)."""

    def __init__(
        self, mode: str = "none", keys_file: Path | None = None, logger: logging.Logger | None = None
    ) -> None:
        self.mode = validate_mode(mode)
        self.keys_file = keys_file
        self.log = logger or logging.getLogger("edgeship.vdevice")
        self._lock = threading.Lock()
        self._keys: list[PublicKey] = self._load_keys()
        # What happened, for tests and logs: how each connection came online.
        self.accepted_by_prompt = 0
        self.accepted_by_signature = 0
        self.prompts_ignored = 0

    @property
    def required(self) -> bool:
        """adbd's ``auth_required`` (ro.adb.secure=1)."""
        return self.mode != "none"

    def new_token(self) -> bytes:
        return os.urandom(TOKEN_SIZE)

    def trusted_keys(self) -> list[PublicKey]:
        with self._lock:
            return list(self._keys)

    def verify(self, token: bytes, signature: bytes) -> PublicKey | None:
        """The remembered key that signed ``token``, if any (deny mode never remembers one)."""
        if len(token) != TOKEN_SIZE:
            return None
        for key in self.trusted_keys():
            if key.verifies(token, signature):
                with self._lock:
                    self.accepted_by_signature += 1
                return key
        return None

    def prompt(self, key_text: str, peer: str) -> bool:
        """The "Allow USB debugging?" prompt for ``key_text``: True when the user taps Allow."""
        if self.mode != "allow":
            with self._lock:
                self.prompts_ignored += 1
            self.log.info("AUTH from %s: key prompt shown, never answered (auth=%s)", peer, self.mode)
            return False
        key = parse_public_key(key_text)
        if key is None:
            self.log.warning("AUTH from %s: RSAPUBLICKEY is not an adb public key; ignored", peer)
            return False
        with self._lock:
            self.accepted_by_prompt += 1
            if all(known.modulus != key.modulus for known in self._keys):
                self._keys.append(key)
                self._save_key(key)
        self.log.info("AUTH from %s: key allowed (auth=allow): %s", peer, _key_comment(key))
        return True

    # ---- remembered keys ------------------------------------------------------------------------------
    def _load_keys(self) -> list[PublicKey]:
        if self.mode != "allow" or self.keys_file is None or not self.keys_file.is_file():
            return []
        keys = []
        for line in self.keys_file.read_text(errors="replace").splitlines():
            key = parse_public_key(line)
            if key is not None:
                keys.append(key)
        return keys

    def _save_key(self, key: PublicKey) -> None:
        if self.keys_file is None:
            return
        try:
            self.keys_file.parent.mkdir(parents=True, exist_ok=True)
            with self.keys_file.open("a") as handle:
                handle.write(key.line.replace("\n", " ") + "\n")
        except OSError as exc:  # the device still works; the key just is not remembered across restarts
            self.log.warning("cannot remember the adb key in %s: %s", self.keys_file, exc)


def _key_comment(key: PublicKey) -> str:
    fields = key.line.split(None, 1)
    return fields[1] if len(fields) > 1 else "(no comment)"


class AuthSession:
    """One connection's side of the handshake: the token it must sign and how often it failed."""

    def __init__(self, device_auth: DeviceAuth) -> None:
        self.device_auth = device_auth
        self.token = b""
        self.failed_attempts = 0

    def next_token(self) -> bytes:
        self.token = self.device_auth.new_token()
        return self.token

    def signature_failed(self) -> None:
        """Count a failed signature; past adbd's limit, slow the host down like adbd does."""
        self.failed_attempts += 1
        if self.failed_attempts > MAX_FAST_FAILED_ATTEMPTS:
            time.sleep(1.0)
