"""The virtual-time model behind B5: its account bucket, and the real broadcast code in it."""

from __future__ import annotations

from bench.b5_scale import STAGE, Workload, simulate
from bench.simulation import Account, Model, Simulator


def test_the_account_bucket_takes_its_burst_then_its_rate() -> None:
    sim = Simulator()
    account = Account(sim, Model())
    # Given a full bucket, 20,000 requests at one instant: the burst is taken, the rest 429
    assert sum(account.take() for _ in range(20_000)) == 5_000
    # Then a tenth of a second refills a tenth of the rate
    sim.at(0.1, lambda: None)
    sim.run()
    assert sum(account.take() for _ in range(20_000)) == 1_000
    assert (account.accepted, account.throttled) == (6_000, 34_000)


def test_a_split_site_gets_every_message_once_in_order_through_fanout_invocations() -> None:
    # Given a site of two and a half chunks, three messages (and the warm-up message)
    viewers = STAGE.fanout_chunk_connections * 5 // 2
    outcome = simulate(Workload("split", 1, viewers, 1.0, 3.0), Model())
    assert outcome.expected == 3 * viewers
    assert (outcome.lost, outcome.out_of_order, outcome.duplicates) == (0, 0, 0)
    # Then each message took two invocations of the fan-out function, and the broadcaster one
    assert outcome.fanout_invocations == 2 * 4
    assert outcome.broadcast_invocations == 4
    assert max(outcome.latencies) < 1.0
