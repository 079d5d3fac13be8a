"""Agents served over HTTPS (`run_agent --tls-cert/--tls-key`), verified by the backend against
`KTRDR_AGENT_CA_BUNDLE`: a real agent process on loopback, the real client, the real pages' API."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactor

from hostagents import services as agent_services
from hostagents.client import AgentClient, AgentUnreachable, client_for
from hostagents.tls import TLSConfigError, endpoint, server_tls, write_self_signed
from tests.hostagents.conftest import TOKEN, AgentProcess, free_port
from tests.hostagents.test_remote import all_metrics, follow, start_remote_countdown

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls_agent(agent_factory: Any) -> AgentProcess:
    return agent_factory("tls", roles="training", tls=True)


def _pooled_connections(client: AgentClient) -> int:
    """New connections the client's pool has opened to its agent so far."""
    pools = client.session.get_adapter(client.base_url).poolmanager.pools
    return sum(pools[key].num_connections for key in list(pools.keys()))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_on_an_https_agent_is_followed_to_its_end_over_one_verified_connection(
    backend_settings, api, tls_agent
):
    backend_settings.KTRDR = {**backend_settings.KTRDR, "AGENT_CA_BUNDLE": str(tls_agent.tls[0])}
    registered, _ = agent_services.agent_add(name="secure", base_url=tls_agent.url)

    started = start_remote_countdown(api, "secure", steps=5, step_seconds=0.05)
    final, _seen = follow(api, started["operation_id"])

    assert tls_agent.url.startswith("https://")
    assert final["status"] == "completed"
    assert final["location"]["executor"] == "agent"
    assert final["location"]["agent"] == "secure"
    assert [m["seq"] for m in all_metrics(api, final["operation_id"])] == list(range(5))
    # The start, the polls and the results fetch reused pooled TLS connections (the fetch runs
    # beside the polls, so it may have opened a second one): not one handshake per request.
    client = client_for(registered)
    assert client.requests_sent.total() >= 4
    assert 1 <= _pooled_connections(client) <= 2


@pytest.mark.slow
def test_an_agent_certificate_not_trusted_here_is_refused_before_the_token_is_sent(tls_agent):
    sent_before = tls_agent.served()
    client = AgentClient("secure", tls_agent.url, TOKEN, retries=2, backoff=0.0)

    with pytest.raises(AgentUnreachable) as refused:
        client.health(retries=True)

    assert "TLS handshake failed (health)" in refused.value.message
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.message
    assert "KTRDR_AGENT_CA_BUNDLE" in refused.value.message
    assert refused.value.delivered is False
    assert client.requests_sent.total() == 1  # a certificate problem is not retried
    # The agent answered no request for it (the health request below is this side's own).
    served = tls_agent.served()
    assert served.get("GET health", 0) == sent_before.get("GET health", 0) + 1


def test_a_tls_failure_other_than_the_certificate_is_retried_like_a_connection_error():
    """An endpoint that answers a TLS hello in plain text (a plain-HTTP proxy registered as
    https://): the handshake fails, but not on the certificate — it may be passing."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_in_plain_text() -> None:
        for _ in range(3):
            conn, _addr = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    server = threading.Thread(target=answer_in_plain_text, daemon=True)
    server.start()
    client = AgentClient("plain", f"https://127.0.0.1:{port}", TOKEN, retries=2, backoff=0.0)
    try:
        with pytest.raises(AgentUnreachable) as refused:
            client.health(retries=True)
    finally:
        server.join(timeout=10)
        listener.close()
    assert refused.value.message.startswith("TLS error (health): ")
    assert "WRONG_VERSION_NUMBER" in refused.value.message
    assert client.requests_sent.total() == 3  # no verdict on the certificate: retried


@pytest.mark.slow
def test_a_certificate_for_another_host_is_refused(tls_agent, tmp_path):
    # Trusted, but issued for a name the agent is not reached by.
    other, _key = write_self_signed(tmp_path, ["gpu-box.example"])
    client = AgentClient("secure", tls_agent.url, TOKEN, ca_bundle=str(other), retries=0)
    with pytest.raises(AgentUnreachable, match="TLS handshake failed"):
        client.health()
    trusted = AgentClient("secure", tls_agent.url, TOKEN, ca_bundle=str(tls_agent.tls[0]))
    assert trusted.health()["status"] == "ok"


@pytest.mark.slow
def test_an_https_agent_speaks_no_plain_http(tls_agent):
    plain = tls_agent.url.replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(
            f"{plain}/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
    # Nor TLS older than 1.2: this side offers 1.1 (its own floor lowered), the agent refuses.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(tls_agent.tls[0])
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", tls_agent.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", tls_agent.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as secured,
    ):
        assert secured.version() == "TLSv1.2"


def test_a_half_or_broken_pair_is_refused_by_name(tmp_path, monkeypatch):
    cert, key = write_self_signed(tmp_path / "a", ["127.0.0.1"])
    other_cert, other_key = write_self_signed(tmp_path / "b", ["127.0.0.1"])
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = {
        (str(cert), ""): "--tls-key is missing",
        ("", str(key)): "--tls-cert is missing",
        (str(tmp_path / "nope.crt"), str(key)): "--tls-cert .*nope.crt: no such file",
        (str(cert), str(other_key)): "--tls-key is not the key of the --tls-cert certificate",
        (str(garbage), str(key)): "not a PEM certificate",
    }
    for (c, k), message in cases.items():
        with pytest.raises(TLSConfigError, match=message):
            server_tls(c, k)
    assert server_tls("", "") is None
    assert server_tls(str(other_cert), str(other_key)).cert == other_cert.resolve()

    # run_agent refuses it before it re-executes itself or binds anything.
    monkeypatch.setenv("KTRDR_AGENT_TOKEN", TOKEN)
    with pytest.raises(CommandError, match="--tls-key is not the key"):
        call_command("run_agent", "--tls-cert", str(cert), "--tls-key", str(other_key))


def test_an_encrypted_key_is_refused_without_a_prompt(tmp_path):
    cert, key = write_self_signed(tmp_path, ["127.0.0.1"])
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TLSConfigError, match="--tls-key is encrypted"):
        server_tls(str(cert), str(encrypted))


def test_the_endpoint_quotes_paths_and_ipv6_interfaces(tmp_path):
    folder = tmp_path / "odd:name=x"
    cert, key = write_self_signed(folder, ["::1"])
    description = endpoint("::1", 8443, server_tls(str(cert), str(key)))
    assert description.startswith(r"ssl:port=8443:interface=\:\:1:privateKey=")
    # twisted parses it back to the same files (it reads them here) and the same interface.
    listening = serverFromString(MemoryReactor(), description)
    assert listening._interface == "::1"
    assert listening._port == 8443
    assert endpoint("127.0.0.1", 8101, None) == "tcp:port=8101:interface=127.0.0.1"


def test_agents_cert_writes_a_pair_the_agent_can_serve_and_keeps_an_existing_one(tmp_path):
    out = subprocess.run(
        [sys.executable, "manage.py", "agents", "cert", str(tmp_path), "--host", "gpu-box",
         "--host", "10.0.0.7", "--days", "30"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "KTRDR_AGENT_CA_BUNDLE" in out.stdout
    cert, key = tmp_path / "agent.crt", tmp_path / "agent.key"
    assert (key.stat().st_mode & 0o777) == 0o600
    assert server_tls(str(cert), str(key)) is not None
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.DNSName) == ["gpu-box"]
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]

    before = key.read_bytes()
    with pytest.raises(CommandError, match=r"already holds agent\.crt, agent\.key"):
        call_command("agents", "cert", str(tmp_path), "--host", "gpu-box")
    assert key.read_bytes() == before
    with pytest.raises(CommandError, match="--days must be 1-3650"):
        call_command("agents", "cert", str(tmp_path / "new"), "--host", "x", "--days", "0")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return {**env, **extra}


def test_a_ca_bundle_setting_that_names_no_file_stops_the_backend(tmp_path):
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=_clean_env(KTRDR_AGENT_CA_BUNDLE=str(tmp_path / "missing.pem")),
    )  # fmt: skip
    assert out.returncode != 0
    assert "KTRDR_AGENT_CA_BUNDLE must name an existing file" in out.stderr


@pytest.mark.slow
def test_plain_http_on_a_network_interface_is_warned_about_and_https_is_not(tmp_path):
    cert, key = write_self_signed(tmp_path / "tls", ["127.0.0.1"])
    for tls, warned in ((False, True), (True, False)):
        port = free_port()
        args = ["--tls-cert", str(cert), "--tls-key", str(key)] if tls else []
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_agent", "--host", "0.0.0.0", "--port", str(port),
             "--home", str(tmp_path / f"home-{tls}"), "--roles", "training", *args],
            cwd=ROOT, env=_clean_env(KTRDR_AGENT_TOKEN=TOKEN), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            lines = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if " ready on " in line:
                    break
            output = "".join(lines)
            assert f"ready on {'https' if tls else 'http'}://0.0.0.0:{port}" in output, output
            assert ("warning: serving plain HTTP on 0.0.0.0" in output) is warned
        finally:
            proc.kill()
            proc.wait(timeout=10)
