"""The monthly cost model of docs/cost.md: ``python -m bench.cost_model`` prints its tables.

Arithmetic on paper, no AWS calls: a scenario, unit prices (us-east-1 list prices as known on
the date below; check them before relying on the result) and one formula per line item, for
the deployed stack and for the old design. docs/cost.md explains every assumption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICES_AS_OF = "2025 (us-east-1 list prices as known then; check before use)"
# Per unit, in USD.
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND_ARM = 0.0000133334
LAMBDA_GB_SECOND_X86 = 0.0000166667
HTTP_API_REQUEST = 1.00 / 1e6  # per request, metered in 512 KB units
WEBSOCKET_MESSAGE = 1.00 / 1e6  # per message, metered in 32 KB units
WEBSOCKET_CONNECTION_MINUTE = 0.25 / 1e6
DYNAMODB_WRU = 0.625 / 1e6
DYNAMODB_RRU = 0.125 / 1e6
DYNAMODB_GB_MONTH = 0.25
DYNAMODB_PITR_GB_MONTH = 0.20
LOGS_GB_INGESTED = 0.50

# Lambda gives a function CPU in proportion to memory: one full vCPU at 1,769 MB.
MB_PER_VCPU = 1769
API_VCPU = 256 / MB_PER_VCPU
BROADCAST_VCPU = 512 / MB_PER_VCPU
SCAN_PAGE_S = 0.030


@dataclass(frozen=True)
class Scenario:
    """The traffic the cost is computed for."""

    sites: int = 20
    users_online: int = 50
    messages_per_day: int = 100_000
    retention_days: int = 7
    days_per_month: int = 30
    session_hours: float = 1.0
    item_bytes: int = 250
    entry_json_bytes: int = 110
    connection_row_bytes: int = 100
    post_round_trip_s: float = 0.020
    put_item_s: float = 0.006
    query_s: float = 0.006
    log_bytes_per_invocation: int = 700

    @property
    def messages(self) -> float:
        return self.messages_per_day * self.days_per_month

    @property
    def fan_out(self) -> float:
        """Deliveries per message: the online users of a message's site."""
        return self.users_online / self.sites

    @property
    def connects(self) -> float:
        return self.users_online * 24 / self.session_hours * self.days_per_month

    @property
    def site_window_messages(self) -> float:
        """Messages of one site in recent-logs' default 24-hour window."""
        return self.messages_per_day / self.sites

    @property
    def table_bytes(self) -> float:
        return self.messages_per_day * self.retention_days * self.item_bytes


@dataclass(frozen=True)
class Measured:
    """Per-operation CPU measured by B1/B4 on the benchmark machine (one core)."""

    old_cpu_per_post_s: float = 0.0090
    new_cpu_per_post_s: float = 0.000090
    client_cpu_per_item_s: float = 0.000060


@dataclass(frozen=True)
class Line:
    """One line item: what, formula, quantity, unit, monthly cost of each design."""

    item: str
    formula: str
    new: float
    old: float


def rru(bytes_read: float) -> float:
    """Read request units of an eventually consistent read of ``bytes_read`` bytes."""
    return 0.5 * max(1, math.ceil(bytes_read / 4096))


def new_broadcast_seconds(s: Scenario, m: Measured) -> float:
    """One broadcaster invocation now: a query, one round of concurrent posts, their CPU."""
    return s.query_s + s.post_round_trip_s + s.fan_out * m.new_cpu_per_post_s / BROADCAST_VCPU


def old_broadcast_seconds(s: Scenario, m: Measured) -> float:
    """One old INSERT invocation: a scan, then posts in sequence, each with a new client."""
    return s.query_s + s.fan_out * (s.post_round_trip_s + m.old_cpu_per_post_s / BROADCAST_VCPU)


def new_recent_logs_seconds(s: Scenario, m: Measured) -> float:
    """GET /recent-logs now: query pages of one site's window, parsed at 256 MB."""
    return s.site_window_messages * m.client_cpu_per_item_s / API_VCPU + 2 * s.query_s


def old_recent_logs_seconds(s: Scenario, m: Measured) -> float:
    """The old recent-logs: a scan of the whole table (1 MB pages, ~30 ms each), parsed."""
    return (
        s.table_bytes / 1e6 * SCAN_PAGE_S
        + s.site_window_messages * m.client_cpu_per_item_s / API_VCPU
    )


def lines(s: Scenario, m: Measured) -> list[Line]:
    """Every line item for the deployed stack (new) and the old design."""
    recent_logs = s.connects
    online_users = s.connects
    http_requests = s.messages + recent_logs + online_users
    ws_invocations = 2 * s.connects

    # Lambda: HTTP and WebSocket functions (256 MB, arm64 in the new stack; x86 old).
    recent_logs_s = new_recent_logs_seconds(s, m)
    api_gb_s = 0.25 * (
        s.messages * (s.put_item_s + 0.002)
        + recent_logs * recent_logs_s
        + online_users * (s.query_s + 0.002)
        + ws_invocations * (s.put_item_s + 0.002)
    )
    old_recent_logs_s = old_recent_logs_seconds(s, m)
    old_api_gb_s = 0.25 * (
        s.messages * (s.put_item_s + 0.002)
        + recent_logs * old_recent_logs_s
        + online_users * (s.query_s + 0.002)
        + ws_invocations * (s.put_item_s + 0.002)
    )
    # Broadcaster (512 MB). New: one invocation per INSERT at this trickle (worst case; bursts
    # batch up to 100), a query, then all posts at once. Old: batch size 1, no INSERT filter,
    # so each TTL deletion (REMOVE) invokes it too; a scan, then posts one after another, each
    # with a new boto3 client.
    new_broadcasts = s.messages
    new_broadcast_s = new_broadcast_seconds(s, m)
    old_broadcasts = 2 * s.messages
    old_insert_s = old_broadcast_seconds(s, m)
    old_remove_s = 0.003
    new_broadcast_gb_s = 0.5 * new_broadcasts * new_broadcast_s
    old_broadcast_gb_s = 0.5 * (s.messages * old_insert_s + s.messages * old_remove_s)

    # DynamoDB.
    message_writes = s.messages * math.ceil(s.item_bytes / 1024)
    connection_writes_new = 2 * s.connects * 2  # put and delete, each also on the id index
    connection_writes_old = 2 * s.connects
    connections_bytes = s.users_online * s.connection_row_bytes
    new_reads = (
        s.messages * rru(s.fan_out * s.connection_row_bytes)
        + recent_logs * rru(s.site_window_messages * s.item_bytes)
        + online_users * rru(s.fan_out * s.connection_row_bytes)
        + s.connects * rru(s.connection_row_bytes)  # $disconnect query on the index
    )
    old_reads = (
        s.messages * rru(connections_bytes)
        + recent_logs * rru(s.table_bytes)
        + online_users * rru(connections_bytes)
    )
    storage_gb = s.table_bytes / 1e9

    # API Gateway.
    recent_logs_units = math.ceil(s.site_window_messages * s.entry_json_bytes / 512_000)
    http_units = s.messages + recent_logs * recent_logs_units + online_users
    ws_messages = s.messages * s.fan_out + 2 * s.connects
    connection_minutes = s.users_online * 60 * 24 * s.days_per_month

    new_invocations = http_requests + ws_invocations + new_broadcasts
    old_invocations = http_requests + ws_invocations + old_broadcasts
    return [
        Line(
            "Lambda requests",
            "invocations x $0.20/M (old: + one broadcaster invocation per TTL deletion)",
            new_invocations * LAMBDA_REQUEST,
            old_invocations * LAMBDA_REQUEST,
        ),
        Line(
            "Lambda GB-s, HTTP + WebSocket functions",
            "Σ invocations x seconds x 0.25 GB x GB-s price (arm64 new, x86 old)",
            api_gb_s * LAMBDA_GB_SECOND_ARM,
            old_api_gb_s * LAMBDA_GB_SECOND_X86,
        ),
        Line(
            "Lambda GB-s, broadcaster",
            "invocations x seconds x 0.5 GB x GB-s price",
            new_broadcast_gb_s * LAMBDA_GB_SECOND_ARM,
            old_broadcast_gb_s * LAMBDA_GB_SECOND_X86,
        ),
        Line(
            "DynamoDB writes",
            "(messages + connection puts/deletes, + index) x WRU x $0.625/M",
            (message_writes + connection_writes_new) * DYNAMODB_WRU,
            (message_writes + connection_writes_old) * DYNAMODB_WRU,
        ),
        Line(
            "DynamoDB reads",
            "Σ requests x ⌈bytes read / 4 KB⌉ x 0.5 RRU x $0.125/M (old: scans read the table)",
            new_reads * DYNAMODB_RRU,
            old_reads * DYNAMODB_RRU,
        ),
        Line(
            "DynamoDB storage (+ PITR, new)",
            "table GB x $0.25 (+ $0.20 PITR)",
            storage_gb * (DYNAMODB_GB_MONTH + DYNAMODB_PITR_GB_MONTH),
            storage_gb * DYNAMODB_GB_MONTH,
        ),
        Line(
            "HTTP API requests",
            "(posts + recent-logs x 512 KB units + onlineusers) x $1.00/M",
            http_units * HTTP_API_REQUEST,
            http_units * HTTP_API_REQUEST,
        ),
        Line(
            "WebSocket messages",
            "(messages x fan-out + connects + disconnects) x $1.00/M",
            ws_messages * WEBSOCKET_MESSAGE,
            ws_messages * WEBSOCKET_MESSAGE,
        ),
        Line(
            "WebSocket connection minutes",
            "users online x 43,200 min x $0.25/M",
            connection_minutes * WEBSOCKET_CONNECTION_MINUTE,
            connection_minutes * WEBSOCKET_CONNECTION_MINUTE,
        ),
        Line(
            "CloudWatch Logs ingestion",
            "invocations x 700 B x $0.50/GB",
            new_invocations * s.log_bytes_per_invocation / 1e9 * LOGS_GB_INGESTED,
            old_invocations * s.log_bytes_per_invocation / 1e9 * LOGS_GB_INGESTED,
        ),
    ]


def volumes(s: Scenario, m: Measured) -> list[tuple[str, str, str]]:
    """The monthly volumes and durations behind the line items, for the record."""
    return [
        ("messages", f"{s.messages:,.0f}", f"{s.messages_per_day:,} a day x {s.days_per_month}"),
        ("deliveries", f"{s.messages * s.fan_out:,.0f}", f"fan-out {s.fan_out:g} a message"),
        ("connects", f"{s.connects:,.0f}", f"sessions of {s.session_hours:g} h"),
        (
            "messages table",
            f"{s.table_bytes / 1e6:,.0f} MB",
            f"{s.messages_per_day * s.retention_days:,} items x {s.item_bytes} B",
        ),
        (
            "new broadcast invocation",
            f"{new_broadcast_seconds(s, m) * 1000:.0f} ms",
            "query + one round of concurrent posts + their CPU at 512 MB",
        ),
        (
            "old broadcast invocation (INSERT)",
            f"{old_broadcast_seconds(s, m) * 1000:.0f} ms",
            "scan + posts in sequence, each with a new boto3 client, at 512 MB",
        ),
        (
            "new GET /recent-logs",
            f"{new_recent_logs_seconds(s, m):.2f} s",
            "query pages of one site's day + parsing at 256 MB",
        ),
        (
            "old GET /recent-logs",
            f"{old_recent_logs_seconds(s, m):.2f} s",
            "scan of the whole table, 1 MB a page, + parsing at 256 MB",
        ),
    ]


def render(s: Scenario | None = None, m: Measured | None = None) -> str:
    """The Markdown tables of docs/cost.md."""
    s = s or Scenario()
    m = m or Measured()
    found = lines(s, m)
    out = ["| line item | formula | new $/month | old $/month |", "|---|---|---|---|"]
    for line in found:
        out.append(f"| {line.item} | {line.formula} | {line.new:.2f} | {line.old:.2f} |")
    new_total = sum(line.new for line in found)
    old_total = sum(line.old for line in found)
    out.append(f"| **total** | | **{new_total:.2f}** | **{old_total:.2f}** |")
    out += ["", f"Old / new: **{old_total / new_total:.1f}x**.", ""]
    compute = (
        "Lambda requests",
        "Lambda GB-s, HTTP + WebSocket functions",
        "Lambda GB-s, broadcaster",
        "DynamoDB reads",
    )
    new_part = sum(line.new for line in found if line.item in compute)
    old_part = sum(line.old for line in found if line.item in compute)
    out += [
        f"The lines the design changes (Lambda, DynamoDB reads): new {new_part:.2f}, "
        f"old {old_part:.2f}, **{old_part / new_part:.1f}x**.",
        "",
        "| volume | per month | how |",
        "|---|---|---|",
    ]
    out += [f"| {name} | {value} | {how} |" for name, value, how in volumes(s, m)]
    return "\n".join(out)


def main() -> None:
    """Print the tables."""
    print(f"Unit prices: {PRICES_AS_OF}\n")
    print(render())


if __name__ == "__main__":
    main()
