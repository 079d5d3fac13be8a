"""The slice of the TWS socket protocol the simulator speaks (pure Python, no I/O).

Framing after the handshake: a 4-byte big-endian length, then text fields each ending in NUL;
the first field is the message id. Field orders follow ib_async 2.1's `client.py` (requests) and
`decoder.py` (answers) at server version 176.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

SERVER_VERSION = 176
MIN_CLIENT_VERSION = 157
ACCOUNT = "DU0000001"

# Incoming message ids
START_API = 71
REQ_POSITIONS = 61
REQ_OPEN_ORDERS = 5
REQ_COMPLETED_ORDERS = 99
REQ_ACCOUNT_UPDATES = 6
REQ_ACCOUNT_UPDATES_MULTI = 76
REQ_EXECUTIONS = 7
REQ_CURRENT_TIME = 49
REQ_CONTRACT_DETAILS = 9
REQ_HEAD_TIMESTAMP = 87
CANCEL_HEAD_TIMESTAMP = 90
REQ_HISTORICAL_DATA = 20
CANCEL_HISTORICAL_DATA = 25


class ProtocolError(ValueError):
    """A malformed message from the client."""


def frame(*fields: object) -> bytes:
    """One length-prefixed message of NUL-terminated text fields."""
    payload = "".join(f"{'' if f is None else f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


def split_fields(payload: bytes) -> list[str]:
    text = payload.decode(errors="replace")
    if not text.endswith("\0"):
        raise ProtocolError("message does not end with a NUL field terminator")
    return text.split("\0")[:-1]


def parse_client_versions(text: str) -> tuple[int, int]:
    """`v157..178` (optionally followed by connect options) → (157, 178)."""
    head = text.split(" ", 1)[0]
    if not head.startswith("v") or ".." not in head:
        raise ProtocolError(f"bad version range {text!r}")
    lo, hi = head[1:].split("..", 1)
    return int(lo), int(hi)


@dataclass(frozen=True)
class ContractFields:
    con_id: str
    symbol: str
    sec_type: str
    last_trade: str
    strike: str
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    @property
    def our_symbol(self) -> str:
        """The symbol as the store names it (forex: base + quote)."""
        if self.sec_type.upper() == "CASH":
            return (self.symbol + self.currency).upper()
        return self.symbol.upper().replace(" ", ".")


def read_contract(fields: list[str], at: int) -> ContractFields:
    if len(fields) < at + 12:
        raise ProtocolError("contract fields missing")
    return ContractFields(*fields[at : at + 12])


@dataclass(frozen=True)
class HistoricalRequest:
    req_id: int
    contract: ContractFields
    end: str
    bar_size: str
    duration: str
    use_rth: str
    what_to_show: str
    format_date: int

    @property
    def identity(self) -> tuple:
        return (self.contract, self.end, self.bar_size, self.duration, self.what_to_show)


def parse_historical_request(fields: list[str]) -> HistoricalRequest:
    # Field order (client.py reqHistoricalData): id 20, reqId, the 12 contract fields,
    # includeExpired, endDateTime, barSize, duration, useRTH, whatToShow, formatDate, ...
    if len(fields) < 21:
        raise ProtocolError("reqHistoricalData has too few fields")
    contract = read_contract(fields, 2)
    return HistoricalRequest(
        req_id=int(fields[1]),
        contract=contract,
        end=fields[15],
        bar_size=fields[16],
        duration=fields[17],
        use_rth=fields[18],
        what_to_show=fields[19],
        format_date=int(fields[20] or 1),
    )


def parse_ib_end(text: str, now: datetime) -> datetime:
    """endDateTime as the client sends it: empty (now), `YYYYmmdd HH:MM:SS UTC` or
    `YYYYmmdd-HH:MM:SS` (UTC)."""
    text = text.strip()
    if not text:
        return now
    if text.endswith(" UTC"):
        text = text[:-4]
    for fmt in ("%Y%m%d %H:%M:%S", "%Y%m%d-%H:%M:%S", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ProtocolError(f"cannot parse endDateTime {text!r}")


def format_bar_date(ts: datetime, *, daily: bool, format_date: int) -> str:
    if daily:
        return ts.strftime("%Y%m%d")
    if format_date == 2:
        return str(int(ts.timestamp()))
    return ts.strftime("%Y%m%d  %H:%M:%S")  # two spaces, as the client expects


def contract_data_fields(req_id: int, c: dict) -> list[object]:
    """contractData (10) at server version 176: see ib_async decoder.contractDetails."""
    return [
        10, req_id, c["ib_symbol"], c["sec_type"], "", "", "", c["exchange"], c["currency"],
        c["local_symbol"], c["market_name"], c["trading_class"], c["con_id"], c["min_tick"],
        "", "LMT,MKT", c["exchange"], 1, 0, c["long_name"], c["primary_exchange"], "", "",
        "", "", c["time_zone"], "", "", "", "", 0,  # numSecIds
        1, "", "", "26", "", "", "1", "1", "1",
    ]  # fmt: skip
