from __future__ import annotations

from pathlib import Path

import pytest

from edgeship.config import AdbServer, Config, default_adb_server, load_config
from edgeship.errors import UsageError


def test_adb_server_parse() -> None:
    assert AdbServer.parse("10.0.0.2:5038") == AdbServer("10.0.0.2", 5038)
    assert AdbServer.parse("5039") == AdbServer("127.0.0.1", 5039)
    with pytest.raises(UsageError):
        AdbServer.parse("host:port")


def test_default_server_honours_adb_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADB_SERVER_SOCKET", raising=False)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "6001")
    assert default_adb_server().port == 6001
    monkeypatch.setenv("ADB_SERVER_SOCKET", "tcp:127.0.0.2:6002")
    assert default_adb_server() == AdbServer("127.0.0.2", 6002)


def test_servers_deduplicate_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADB_SERVER_SOCKET", raising=False)
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)
    assert Config().servers() == [AdbServer("127.0.0.1", 5037)]
    config = Config(adb_servers=[AdbServer("a", 1)])
    assert config.servers(["a:1", "b:2"]) == [AdbServer("a", 1), AdbServer("b", 2)]


def test_load_config(tmp_path: Path) -> None:
    path = tmp_path / "edgeship.yaml"
    path.write_text(
        "adb_servers: ['127.0.0.1:5037', 'lab:5038']\n"
        "labels: {flagship: [S1, S2]}\n"
        "runners: {arm64-v8a: /opt/litert_lm_main}\n"
    )
    config = load_config(path)
    assert config.adb_servers[1] == AdbServer("lab", 5038)
    assert config.labels == {"flagship": ["S1", "S2"]}
    assert config.runners["arm64-v8a"] == "/opt/litert_lm_main"


@pytest.mark.parametrize("text", ["[1, 2]", "unknown_key: 1", "a: [unclosed"])
def test_bad_config_is_a_one_line_usage_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "edgeship.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_config(path)
    assert "\n" not in str(info.value)
