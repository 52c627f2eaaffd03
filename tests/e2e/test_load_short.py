"""The short load run of ``bench.load`` (50 subscribers over 5 sites, 10 posts/s for 5 s): nothing
lost, nothing duplicated, every subscriber gets exactly its own site's messages in order.

Correctness only: the rates are figures of ``make bench``, never asserted here.
"""

from __future__ import annotations

import asyncio

from bench.load import LoadSettings, load_relay
from userstatus_local.process import RelayProcess

SHORT = LoadSettings(subscribers=50, sites=5, rate=10.0, seconds=5.0)


def test_every_subscriber_gets_exactly_its_sites_messages_in_order() -> None:
    relay = RelayProcess.start()
    try:
        main, steps = asyncio.run(load_relay(relay, SHORT))
        crashes = [r for r in relay.log_records() if r.get("message") == "handler raised"]
    finally:
        relay.stop()
    assert steps == []
    assert main.post_errors == 0
    assert main.posted == 50
    assert main.stored == main.posted
    assert main.expected == 50 * 10  # each message to the 10 subscribers of its site
    assert main.lost == 0
    assert main.duplicates == 0
    assert main.out_of_order == 0
    assert main.wrong_frames == []
    assert main.exact_subscribers == 50  # each got 0, 1, 2, ... of its own site, nothing else
    assert (main.relay_delivered, main.relay_failed, main.relay_gone) == (500, 0, 0)
    assert main.relay_dropped_clients == main.relay_dropped_records == 0
    assert crashes == []
