"""Offline is decided quickly and every offline failure is one clear line."""

from __future__ import annotations

import socket
import time

import pytest
from fsspec.registry import _registry as fsspec_registry
from huggingface_hub import HfFileSystem

from builder.engine.sources import load_images
from weightzoo import hub as hubmod
from weightzoo import open_zoo
from weightzoo.errors import DataSourceError, ZooNotFoundError


@pytest.fixture(autouse=True)
def _fresh_probe():
    hubmod.offline_reason.cache_clear()
    yield
    hubmod.offline_reason.cache_clear()


@pytest.fixture
def real_hf(monkeypatch):
    """``hf://`` served by huggingface_hub (the test suite's stand-in replaced, as on a user's machine)."""
    monkeypatch.setitem(fsspec_registry, "hf", HfFileSystem)


def test_env_says_offline_without_probing(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed although offline is set"))
    assert hubmod.offline_reason() == "HF_HUB_OFFLINE is set"


def test_one_probe_decides_and_is_remembered(monkeypatch):
    calls = []

    def refuse(address, timeout):
        calls.append((address, timeout))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org:8443")
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert hubmod.offline_reason() == "cannot reach hub.example.org:8443 (Connection refused)"
    assert hubmod.offline_reason() is not None and calls == [(("hub.example.org", 8443), hubmod.PROBE_SECONDS)]


def test_image_source_offline_fails_in_one_line_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DataSourceError) as err:
        load_images("cifar10", cache_dir=tmp_path)
    assert time.perf_counter() - start < 5 and "\n" not in str(err.value)
    assert "not reachable (HF_HUB_OFFLINE is set)" in str(err.value) and "--image-root" in str(err.value)


def test_hub_zoo_offline_fails_in_one_line(monkeypatch, real_hf, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ZooNotFoundError, match=r"^'hf://datasets/org/zoo': the Hugging Face Hub is not reachable"):
        open_zoo("hf://datasets/org/zoo")
    datasets = pytest.importorskip("datasets")
    import weightzoo  # noqa: F401  (registers the builder)

    with pytest.raises(ZooNotFoundError, match="not reachable"):
        datasets.load_dataset("weightzoo", data_dir="hf://datasets/org/zoo", cache_dir=str(tmp_path))


def test_stand_in_hub_is_not_probed(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the suite's local hf:// stand-in works offline
    assert not hub_uses_real("hf://datasets/org/zoo")


def hub_uses_real(url: str) -> bool:
    return hubmod.uses_real_hub(url)


def test_an_endpoint_that_accepts_tcp_but_breaks_tls_is_offline_in_one_try(monkeypatch, real_hf, capsys):
    """A proxy or captive portal that accepts the connection and then closes it (or talks plain HTTP): one probe,
    under PROBE_SECONDS, says offline; the baselines CLI on an hf:// zoo then fails in one line, exit 2."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        for _ in range(2):
            conn, _ = server.accept()
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")  # not a TLS server hello
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"https://127.0.0.1:{port}")
    start = time.perf_counter()
    reason = hubmod.offline_reason()
    assert reason is not None and reason.startswith(f"no TLS connection to 127.0.0.1:{port}"), reason
    assert time.perf_counter() - start < hubmod.PROBE_SECONDS
    from weightzoo.baselines.__main__ import main

    assert main(["hf://datasets/org/zoo", "--target", "optimizer"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not reachable (no TLS connection" in err and len(err.splitlines()) == 1, err
    server.close()
