"""`edgeship vdevice start|list|stop` as a user runs it: background daemons, a real adb server."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time

import pytest

from edgeship.vdevice.registry import process_is_daemon


@pytest.fixture
def cli(edgeship_cli):
    return lambda *args: edgeship_cli("vdevice", *args)


@pytest.mark.e2e
def test_start_list_stop(cli, edgeship_cli, adb_server):
    first = cli("start", "--name", "alpha", "--json")
    assert first.returncode == 0, first.stderr
    alpha = json.loads(first.stdout)
    second = cli("start", "--name", "beta", "--profile", "vbudget4g")
    assert second.returncode == 0, second.stderr
    beta_serial = second.stdout.strip()
    assert alpha["serial"] != beta_serial

    listing = json.loads(cli("list", "--json").stdout)
    by_name = {entry["name"]: entry for entry in listing}
    assert set(by_name) == {"alpha", "beta"}
    assert all(entry["running"] for entry in listing)
    assert by_name["beta"]["serial"] == beta_serial
    assert by_name["beta"]["model"] == "Virtual Budget 4G"
    assert by_name["alpha"]["adb_server"] == adb_server.address
    assert os.path.isfile(by_name["alpha"]["log"])

    devices = adb_server.run("devices", "-l").stdout
    assert alpha["serial"] in devices and beta_serial in devices
    assert (
        adb_server.run("-s", beta_serial, "shell", "getprop ro.product.model").stdout.strip()
        == "Virtual Budget 4G"
    )

    again = cli("start", "--name", "alpha")
    assert again.returncode == 5
    assert "already runs" in again.stderr and len(again.stderr.strip().splitlines()) == 1

    assert cli("stop", "alpha").returncode == 0
    assert not process_is_daemon(alpha["pid"])
    assert [entry["name"] for entry in json.loads(cli("list", "--json").stdout)] == ["beta"]
    unnamed = [cli("start", "--no-connect", "--json") for _ in range(2)]
    assert [json.loads(r.stdout)["name"] for r in unnamed] == ["vdevice1", "vdevice2"]
    assert cli("stop", "--all").returncode == 0
    assert json.loads(cli("list", "--json").stdout) == []
    deadline = time.monotonic() + 10
    while alpha["serial"] in adb_server.run("devices").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alpha["serial"] not in adb_server.run("devices").stdout
    assert not (edgeship_cli.cli.home / "vdevices" / "alpha").exists()


def test_user_errors_are_one_line(cli):
    unknown = cli("start", "--name", "x1", "--profile", "no-such-profile")
    assert unknown.returncode == 2
    assert "unknown device profile" in unknown.stderr
    assert cli("stop", "nobody").returncode == 5
    bad_name = cli("start", "--name", "../evil")
    assert bad_name.returncode == 5 and "not valid" in bad_name.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = cli("start", "--name", "busy", "--no-connect", "--port", str(port))
    assert busy.returncode == 5
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and len(busy.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_start_with_a_link_speed_paces_the_device(cli, adb_server, tmp_path):
    """`vdevice start --link-mb-per-s 4`: recorded, and a 16 MB push takes at least 16/4 s (a lower bound
    only: pacing sleeps, it never hurries; loopback speed moves the same file in a fraction of that)."""
    started = cli("start", "--name", "cable", "--link-mb-per-s", "4", "--json")
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    assert record["link_mb_per_s"] == 4
    [listed] = [e for e in json.loads(cli("list", "--json").stdout) if e["name"] == "cable"]
    assert listed["link_mb_per_s"] == 4
    data = os.urandom(16 * 1000 * 1000)
    source = tmp_path / "blob"
    source.write_bytes(data)
    began = time.monotonic()
    pushed = adb_server.run("-s", record["serial"], "push", str(source), "/data/local/tmp/blob")
    elapsed = time.monotonic() - began
    assert pushed.returncode == 0, pushed.stderr
    assert elapsed >= len(data) / 4e6 * 0.9, elapsed
    on_device = adb_server.run("-s", record["serial"], "shell", "sha256sum /data/local/tmp/blob").stdout
    assert on_device.split()[0] == hashlib.sha256(data).hexdigest()
