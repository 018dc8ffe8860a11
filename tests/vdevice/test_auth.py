"""adbd's AUTH handshake in the virtual device (``--auth none|deny|allow``).

Keys are real adb keys (``adb keygen``) and signatures are made by openssl the way the adb host makes them
(PKCS#1 v1.5 over the 20-byte token taken as a SHA-1 digest), so the device's verification is checked against
an implementation that is not ours; the end-to-end tests use the real adb servers and their own user key.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgeship.errors import InputError
from edgeship.vdevice import VirtualDevice, load_profile
from edgeship.vdevice.auth import (
    AUTH_MODES,
    AUTH_RSAPUBLICKEY,
    AUTH_SIGNATURE,
    AUTH_TOKEN,
    KEYS_FILE,
    TOKEN_SIZE,
    parse_public_key,
)
from tests.cli import EdgeshipCli
from tests.fixtures.adb import BUNDLED_ADB, require_binary
from tests.vdevice.rawclient import CNXN, OKAY, OPEN, Message, RawHost

AUTH = int.from_bytes(b"AUTH", "little")
HOST_BANNER = b"host::features=shell_v2,cmd,stat_v2,ls_v2"


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh adb key pair made by adb itself; returns the private key's path (``.pub`` next to it)."""
    folder = tmp_path_factory.mktemp("adbkey")
    subprocess.run([BUNDLED_ADB, "keygen", str(folder / "adbkey")], check=True, capture_output=True)
    return folder / "adbkey"


def _sign(key: Path, token: bytes, tmp_path: Path) -> bytes:
    """What the adb host sends: RSA_sign(NID_sha1, token) with its private key (here through openssl)."""
    openssl = require_binary("openssl")
    source, target = tmp_path / "token", tmp_path / "signature"
    source.write_bytes(token)
    sign = ["pkeyutl", "-sign", "-inkey", str(key), "-pkeyopt", "digest:sha1"]
    subprocess.run([openssl, *sign, "-in", str(source), "-out", str(target)], check=True, capture_output=True)
    return target.read_bytes()


def _public_key_payload(key: Path) -> bytes:
    # The host sends "<base64> user@host" with a trailing NUL (adbd reads a C string).
    return Path(f"{key}.pub").read_bytes().strip() + b"\0"


def _hello(host: RawHost) -> Message:
    host.send(CNXN, 0x01000001, 1024 * 1024, HOST_BANNER)
    return host.receive()


def _is_token(message: Message) -> bool:
    return message.command == AUTH and message.arg0 == AUTH_TOKEN and len(message.data) == TOKEN_SIZE


# ---- signatures and keys, against adb keygen + openssl -----------------------------------------------------
def test_signature_from_openssl_verifies_and_tampering_does_not(host_key: Path, tmp_path: Path) -> None:
    key = parse_public_key(Path(f"{host_key}.pub").read_text())
    assert key is not None and key.modulus.bit_length() == 2048
    token = bytes(range(TOKEN_SIZE))
    signature = _sign(host_key, token, tmp_path)
    assert key.verifies(token, signature)
    assert not key.verifies(bytes(reversed(token)), signature)
    assert not key.verifies(token, signature[:-1] + bytes([signature[-1] ^ 1]))
    assert not key.verifies(token, signature[:-1])  # adbd's RSA_verify wants exactly the modulus size


def test_malformed_public_keys_are_refused(host_key: Path) -> None:
    text = Path(f"{host_key}.pub").read_text()
    encoded = text.split()[0]
    assert parse_public_key("") is None
    assert parse_public_key("not base64 at all!") is None
    assert parse_public_key(encoded[:-8]) is None  # wrong decoded size
    assert parse_public_key(encoded) is not None  # the comment is optional


def test_profile_auth_key_and_ro_adb_secure(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: X\nauth: maybe\n")
    with pytest.raises(InputError, match="auth"):
        load_profile(bad)
    good = tmp_path / "secure.yaml"
    good.write_text("model: Secure Phone\nauth: deny\n")
    assert load_profile(good).auth == "deny"
    for auth, secure in (("none", "0"), ("deny", "1"), ("allow", "1")):
        device = VirtualDevice(name=f"p{auth}", profile=good, root=tmp_path / auth, auth=auth)
        assert device.auth.mode == auth and device.sandbox.properties["ro.adb.secure"] == secure
    assert VirtualDevice(name="pdefault", profile=good, root=tmp_path / "d").auth.mode == "deny"


# ---- the protocol, from a raw host ------------------------------------------------------------------------
def test_none_answers_cnxn_with_cnxn(tmp_path: Path) -> None:
    with VirtualDevice(name="anone", root=tmp_path / "d") as device:
        host = RawHost(device.port)
        try:
            assert _hello(host).command == CNXN
        finally:
            host.close()


def test_deny_asks_for_auth_and_ignores_everything_else(host_key: Path, tmp_path: Path) -> None:
    with VirtualDevice(name="adeny", root=tmp_path / "d", auth="deny") as device:
        host = RawHost(device.port)
        try:
            first = _hello(host)
            assert _is_token(first), first
            # Before authorization adbd drops OPEN (no OKAY, no CLSE) and never prompts an answer to a key.
            host.send(OPEN, 7, 0, b"shell:echo leaked\0")
            host.send(AUTH, AUTH_RSAPUBLICKEY, 0, _public_key_payload(host_key))
            # A correct signature from a key this device never accepted fails like a wrong one: a fresh token.
            host.send(AUTH, AUTH_SIGNATURE, 0, _sign(host_key, first.data, tmp_path))
            second = host.receive()
            assert _is_token(second) and second.data != first.data, second
            host.send(AUTH, AUTH_SIGNATURE, 0, b"\x01" * 256)
            third = host.receive()
            assert _is_token(third) and third.data not in (first.data, second.data)
        finally:
            host.close()
        assert device.auth.prompts_ignored == 1 and device.auth.trusted_keys() == []
        assert not (device.root / KEYS_FILE).exists()
        assert not list(device.sandbox_root.iterdir())  # nothing ran


def test_allow_accepts_the_key_then_its_signatures(host_key: Path, tmp_path: Path) -> None:
    with VirtualDevice(name="aallow", root=tmp_path / "d", auth="allow") as device:
        host = RawHost(device.port)
        try:
            assert _is_token(_hello(host))
            host.send(AUTH, AUTH_RSAPUBLICKEY, 0, b"garbage key\0")  # not an adb key: no prompt is answered
            host.send(AUTH, AUTH_RSAPUBLICKEY, 0, _public_key_payload(host_key))
            banner = host.receive()
            assert banner.command == CNXN and banner.data.startswith(b"device::"), banner
            local, reply = host.open("shell:getprop ro.adb.secure")
            assert reply.command == OKAY
            assert host.read_stream(local)[0].strip() == b"1"
        finally:
            host.close()
        assert device.auth.accepted_by_prompt == 1
        # A new connection (and a restarted device, through adb_keys) signs the token: no prompt any more.
        remembered = (device.root / KEYS_FILE).read_text().split()[0]
        assert remembered == Path(f"{host_key}.pub").read_text().split()[0]
    with VirtualDevice(name="aallow", root=tmp_path / "d", auth="allow") as device:
        host = RawHost(device.port)
        try:
            token = _hello(host)
            assert _is_token(token)
            host.send(AUTH, AUTH_SIGNATURE, 0, _sign(host_key, token.data, tmp_path))
            assert host.receive().command == CNXN
        finally:
            host.close()
        assert (device.auth.accepted_by_signature, device.auth.accepted_by_prompt) == (1, 0)


def test_unknown_auth_type_takes_the_connection_offline(host_key: Path, tmp_path: Path) -> None:
    with VirtualDevice(name="aoff", root=tmp_path / "d", auth="allow") as device:
        host = RawHost(device.port)
        try:
            assert _is_token(_hello(host))
            host.send(AUTH, AUTH_TOKEN, 0, b"\0" * TOKEN_SIZE)  # a host never sends TOKEN: adbd goes offline
            host.send(OPEN, 7, 0, b"shell:echo leaked\0")
            host.send(AUTH, AUTH_SIGNATURE, 0, b"\x01" * 256)
            assert _is_token(host.receive())  # the OPEN got no answer; AUTH still runs, as in adbd
        finally:
            host.close()


# ---- real adb servers -------------------------------------------------------------------------------------
def test_deny_is_listed_unauthorized(any_adb_server, vdevice_factory) -> None:
    device = vdevice_factory(any_adb_server, auth="deny")
    again = any_adb_server.run("connect", device.serial)
    assert "failed to authenticate" in again.stdout or "already connected" in again.stdout, again.stdout
    listing = any_adb_server.run("devices").stdout.splitlines()
    assert [device.serial, "unauthorized"] in [line.split() for line in listing]
    shell = any_adb_server.run("-s", device.serial, "shell", "echo leaked")
    assert shell.returncode != 0 and "unauthorized" in shell.stderr and "leaked" not in shell.stdout
    assert device.auth.prompts_ignored >= 1 and device.auth.trusted_keys() == []


def test_deny_connect_says_failed_to_authenticate(any_adb_server, tmp_path: Path) -> None:
    with VirtualDevice(name="cdeny", root=tmp_path / "d", auth="deny") as device:
        try:
            result = any_adb_server.run("connect", device.serial, timeout=60)
            assert f"failed to authenticate to {device.serial}" in result.stdout, result.stdout
        finally:
            any_adb_server.disconnect(device.serial)


def test_allow_becomes_device_and_reconnects_by_signature(any_adb_server, vdevice_factory) -> None:
    device = vdevice_factory(any_adb_server, auth="allow")
    assert any_adb_server.run("-s", device.serial, "get-state").stdout.strip() == "device"
    shell = any_adb_server.run("-s", device.serial, "shell", "getprop ro.adb.secure; echo ok")
    assert (shell.returncode, shell.stdout.split()) == (0, ["1", "ok"])
    assert device.auth.accepted_by_prompt == 1
    # The server's own user key was remembered: a reconnection signs the token and needs no prompt.
    any_adb_server.disconnect(device.serial)
    any_adb_server.connect(device.serial)
    assert (device.auth.accepted_by_prompt, device.auth.accepted_by_signature) == (1, 1)


def test_none_is_unchanged(adb_server, vdevice_factory) -> None:
    device = vdevice_factory(adb_server)
    secure = adb_server.run("-s", device.serial, "shell", "getprop ro.adb.secure").stdout.strip()
    assert secure == "0" and device.auth.mode == "none"
    assert (
        device.auth.prompts_ignored
        == device.auth.accepted_by_prompt
        == device.auth.accepted_by_signature
        == 0
    )


@pytest.mark.e2e
def test_cli_start_auth_deny(adb_server, cli: EdgeshipCli) -> None:
    edgeship = cli.with_server(adb_server)

    def vdevice(*args: str) -> subprocess.CompletedProcess[str]:
        return edgeship("vdevice", *args, timeout=120)

    help_text = vdevice("start", "--help").stdout
    assert all(mode in help_text for mode in AUTH_MODES) and "unauthorized" in help_text
    started = vdevice(
        "start", "--name", "locked", "--auth", "deny", "--adb-server", adb_server.address, "--json"
    )
    try:
        assert started.returncode == 0, started.stderr
        record = json.loads(started.stdout)
        assert record["auth"] == "deny"
        listing = adb_server.run("devices").stdout.splitlines()
        assert [record["serial"], "unauthorized"] in [line.split() for line in listing]
    finally:
        assert vdevice("stop", "--all").returncode == 0
