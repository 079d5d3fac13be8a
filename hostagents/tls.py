"""TLS for agents reached from another machine (docs/agents.md, "Exposing an agent").

An agent serves HTTPS itself when `run_agent` is given a certificate and its key (daphne's twisted
`ssl:` endpoint); the backend verifies it against `KTRDR_AGENT_CA_BUNDLE` — the agent's own
certificate when it is self-signed (`manage.py agents cert` writes one), or the CA that signed it.
The pair is checked before the agent re-executes itself, so a wrong path, an unreadable file or a
key that does not belong to the certificate is refused by name instead of failing in the reactor.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.endpoints import quoteStringArgument

# How long a certificate written by `agents cert` is valid, by default and at most.
CERT_DAYS = 825
MAX_CERT_DAYS = 3650


class TLSConfigError(ValueError):
    """A certificate/key pair that cannot serve: the message names the option and the reason."""


@dataclass(frozen=True)
class ServerTLS:
    cert: Path
    key: Path


def server_tls(cert: str, key: str) -> ServerTLS | None:
    """The checked pair (None for plain HTTP: both empty). Refuses one without the other, a path
    that is not a readable file, and a key that does not match the certificate."""
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "--tls-cert" if not cert else "--tls-key"
        raise TLSConfigError(f"{missing} is missing: TLS needs both --tls-cert and --tls-key")
    paths = {}
    for option, raw in (("--tls-cert", cert), ("--tls-key", key)):
        path = Path(raw).expanduser().resolve()
        if not path.is_file():
            raise TLSConfigError(f"{option} {raw}: no such file")
        if not os.access(path, os.R_OK):
            raise TLSConfigError(f"{option} {raw}: not readable by this user")
        paths[option] = path
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A callable password: OpenSSL would otherwise prompt on the terminal for an encrypted key.
        context.load_cert_chain(paths["--tls-cert"], paths["--tls-key"], password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSConfigError("--tls-key is not the key of the --tls-cert certificate") from None
        raise TLSConfigError(
            f"--tls-cert/--tls-key: not a PEM certificate and its private key ({exc.reason or exc})"
        ) from None
    return ServerTLS(cert=paths["--tls-cert"], key=paths["--tls-key"])


def _no_password() -> bytes:
    raise TLSConfigError("--tls-key is encrypted: an agent starts unattended, give it a plain key")


def endpoint(host: str, port: int, tls: ServerTLS | None) -> str:
    """The twisted endpoint description daphne listens on."""
    interface = host.strip("[]").replace(":", r"\:")
    if tls is None:
        return f"tcp:port={int(port)}:interface={interface}"
    return (
        f"ssl:port={int(port)}:interface={interface}"
        f":privateKey={quoteStringArgument(str(tls.key))}"
        f":certKey={quoteStringArgument(str(tls.cert))}"
    )


def write_self_signed(
    folder: Path,
    names: list[str],
    *,
    days: int = CERT_DAYS,
    overwrite: bool = False,
    now: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for `names` (host names or IP addresses) and its
    key, as `agent.crt` and `agent.key` (0600) in `folder`. The backend trusts exactly this
    certificate when `KTRDR_AGENT_CA_BUNDLE` points at a copy of `agent.crt`."""
    if not names:
        raise TLSConfigError("a certificate needs at least one host name or IP address")
    if not 1 <= days <= MAX_CERT_DAYS:
        raise TLSConfigError(f"--days must be 1-{MAX_CERT_DAYS}, got {days}")
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            if not name or len(name) > 253 or any(c.isspace() for c in name):
                raise TLSConfigError(f"not a host name or IP address: {name!r}") from None
            alt.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        # A CA of itself, so that OpenSSL accepts it as the trust anchor of its own chain.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "agent.crt", folder / "agent.key"
    existing = [p.name for p in (cert_path, key_path) if p.exists()]
    if existing and not overwrite:
        held = ", ".join(existing)
        raise TLSConfigError(f"{folder} already holds {held} (--force replaces them)")
    folder.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path.unlink(missing_ok=True)  # a replaced key is written anew, readable by its owner only
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
