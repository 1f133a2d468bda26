"""The emulator's interruptible market (market.py): bid offers, instances rented at a bid and billed at it,
outbids that stop them while storage bills on, comebacks, and a raised bid that runs them again."""

from __future__ import annotations

import json

import aiohttp
import pytest

from usim_tui.emulator.faults import FaultProfile, load_faults, rng_for
from usim_tui.emulator.market import OUTBID_MSG, outbids
from usim_tui.emulator.server import serve
from usim_tui.emulator.state import Emulator, Instance
from usim_tui.fleet.clock import VirtualClock

KEY = "market-test-key"
ROUGH = {"outbid_per_hour": 2.0, "clearing_rise": (1.2, 1.4), "back_p": 1.0, "back_after_s": (600, 900)}


def emulator(market: dict | None = None, **kw) -> Emulator:
    prof = FaultProfile.model_validate({"name": "t", "provisioning_s": (5, 10), "image_pull_s": (20, 40),
                                        "market": market or {}, **kw})
    return Emulator(VirtualClock(), faults=prof, api_keys=(KEY,), gentle=True)


async def search(s: aiohttp.ClientSession, url: str, kind: str) -> list[dict]:
    s.emu.clock.advance(7)   # past the search endpoint's rate limit (virtual time)
    async with s.post(f"{url}/api/v0/bundles/", json={"gpu_name": {"eq": "RTX 4090"}, "num_gpus": {"eq": 1},
                                                      "type": kind, "limit": 5}) as r:
        return (await r.json())["offers"]


async def create(s: aiohttp.ClientSession, url: str, offer: int, label: str, price: float | None) -> tuple[int, dict]:
    body = {"client_id": "me", "image": "x", "disk": 32, "label": label, "onstart": "true", "runtype": "ssh"}
    if price is not None:
        body["price"] = price
    s.emu.clock.advance(5)
    async with s.put(f"{url}/api/v0/asks/{offer}/", json=body) as r:
        return r.status, await r.json()


async def rent_at_min_bid(s: aiohttp.ClientSession, url: str) -> tuple[dict, Instance]:
    """The cheapest bid offer, rented at its min_bid: (the offer, its instance)."""
    o = (await search(s, url, "bid"))[0]
    _, body = await create(s, url, o["id"], "usim:m:c0:1", o["min_bid"])
    return o, s.emu.instances[body["new_contract"]]   # type: ignore[attr-defined]


def session(emu: Emulator) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"})
    s.emu = emu   # type: ignore[attr-defined]  (the helpers step its clock past rate limits)
    return s


async def test_bid_offers_carry_min_bid_and_a_bid_instance_bills_its_bid_not_the_price():
    emu = emulator()
    async with serve(emu) as url, session(emu) as s:
        bid_offers = await search(s, url, "bid")
        on_demand = {o["id"]: o for o in await search(s, url, "on-demand")}
        assert not any(o["is_bid"] for o in on_demand.values())
        # a bid search shows interruptible pricing (vastai's `search offers --type`), its min_bid plus storage
        assert bid_offers and all(o["is_bid"] and 0 < o["min_bid"] == o["dph_base"] for o in bid_offers)
        assert all(o["dph_total"] == pytest.approx(o["min_bid"] + o["storage_total_cost"]) for o in bid_offers)
        assert all(o["min_bid"] < on_demand[o["id"]]["dph_base"] for o in bid_offers if o["id"] in on_demand)
        o = bid_offers[0]
        bid = round(o["min_bid"] * 1.1, 4)
        status, body = await create(s, url, o["id"], "usim:m:c0:1", bid)
        assert status == 200
        inst = emu.instances[body["new_contract"]]
        emu.clock.advance(3600 * 2)
        row = emu.row(inst)
        assert row["is_bid"] and row["bid_price"] == bid and row["actual_status"] == "running"
        running = emu.clock.now() - inst.running_since()
        storage = inst.storage_per_hour * (emu.clock.now() - inst.created_at) / 3600
        assert inst.billed(emu.clock.now()) == pytest.approx(bid * running / 3600 + storage)
        assert bid < on_demand[o["id"]]["dph_base"], "cheaper than on demand"


async def test_on_demand_instances_are_never_outbid_even_in_a_rough_market():
    emu = emulator(ROUGH)
    async with serve(emu) as url, session(emu) as s:
        offers = await search(s, url, "on-demand")
        ids = [(await create(s, url, o["id"], f"usim:m:c{i}:1", None))[1]["new_contract"]
               for i, o in enumerate(offers[:3])]
        emu.clock.advance(12 * 3600)
        assert all(emu.status(emu.instances[i]).actual == "running" for i in ids)
        assert not any(emu.instances[i].outbids for i in ids)


async def test_an_outbid_instance_stops_bills_storage_only_and_comes_back_empty_when_the_market_falls():
    emu = emulator(ROUGH)
    async with serve(emu) as url, session(emu) as s:
        o, inst = await rent_at_min_bid(s, url)
        first = inst.outbids[0]
        assert first.at > inst.running_since() and first.back_at is not None
        emu.clock.advance(first.at + 1 - emu.clock.now())
        clearing = inst.clearing(emu.clock.now())
        assert clearing == pytest.approx(first.rise * o["min_bid"], rel=1e-3) and clearing > o["min_bid"]
        row = emu.row(inst)   # Vast's outbid triple (docs/vast.md)
        assert (row["actual_status"], row["intended_status"], row["cur_state"]) == ("stopped",) * 3
        assert row["status_msg"] == OUTBID_MSG
        before = inst.billed(emu.clock.now())
        emu.clock.advance(300)
        assert inst.billed(emu.clock.now()) - before == pytest.approx(inst.storage_per_hour * 300 / 3600)
        emu.clock.advance(first.back_at + 1 - emu.clock.now())
        assert emu.status(inst).actual == "running"
        second = inst.outbids[1]   # and the market goes on: outbid again later
        emu.clock.advance(second.at + 1 - emu.clock.now())
        assert emu.status(inst).actual == "stopped"


async def test_a_raised_bid_runs_an_outbid_instance_at_once_only_at_the_clearing_price_and_the_market_goes_on():
    emu = emulator({**ROUGH, "back_p": 0.0})
    async with serve(emu) as url, session(emu) as s:
        o, inst = await rent_at_min_bid(s, url)
        iid = inst.id
        (only,) = inst.outbids   # with no comeback the market stops drawing after the first
        assert only.back_at is None
        emu.clock.advance(only.at + 60 - emu.clock.now())
        clearing = inst.clearing(emu.clock.now())

        async def change(price):
            emu.clock.advance(2)
            async with s.put(f"{url}/api/v0/instances/bid_price/{iid}/", json={"client_id": "me", "price": price}) as r:
                return r.status

        async def start():
            emu.clock.advance(2)
            async with s.put(f"{url}/api/v0/instances/{iid}/", json={"state": "running"}) as r:
                return r.status

        assert await start() == 200 and emu.status(inst).actual == "stopped", "a start at the losing bid does nothing"
        assert await change(round(clearing * 0.95, 4)) == 200
        assert emu.status(inst).actual == "stopped", "under the clearing price it stays stopped"
        assert await change(clearing) == 200
        assert emu.status(inst).actual == "running" and emu.row(inst)["bid_price"] == clearing
        assert emu.row(inst)["dph_total"] == pytest.approx(clearing + inst.storage_per_hour)
        t = emu.clock.now()
        later = [x for x in inst.outbids if x.at > t]
        assert later, "running again, it meets the market again"
        window = min(600.0, later[0].at - t - 1)   # running, at the new bid, until it is outbid again
        emu.clock.advance(window)
        storage = inst.storage_per_hour * window / 3600
        assert inst.billed(emu.clock.now()) - inst.billed(t) == pytest.approx(clearing * window / 3600 + storage)
        emu.clock.advance(later[0].at + 1 - emu.clock.now())
        assert emu.status(inst).actual == "stopped"
        assert inst.clearing(emu.clock.now()) == pytest.approx(later[0].rise * clearing, rel=1e-3), \
            "the new clearing price follows the bid in force"


async def test_a_running_bid_lowered_under_min_bid_is_outbid_at_once():
    emu = emulator()
    async with serve(emu) as url, session(emu) as s:
        o, inst = await rent_at_min_bid(s, url)
        emu.clock.advance(3600)
        assert emu.status(inst).actual == "running"
        assert emu.change_bid(inst, round(o["min_bid"] / 2, 4)) is None
        assert emu.status(inst).actual == "stopped" and inst.clearing(emu.clock.now()) == pytest.approx(o["min_bid"])


async def test_a_bid_under_min_bid_still_makes_an_instance_that_is_stopped_and_bills_storage():
    emu = emulator()
    async with serve(emu) as url, session(emu) as s:
        o = (await search(s, url, "bid"))[0]
        status, body = await create(s, url, o["id"], "usim:m:c0:1", round(o["min_bid"] / 2, 4))
        assert status == 200, "made, as dstack saw: a too-low bid creates a stopped instance"
        inst = emu.instances[body["new_contract"]]
        emu.clock.advance(3600)
        assert emu.status(inst).actual == "stopped"
        assert inst.billed(emu.clock.now()) == pytest.approx(inst.storage_per_hour, rel=0.01)
        assert emu.change_bid(inst, None) is None   # a winning bid: min_bid, and it runs
        assert emu.status(inst).actual == "running" and inst.bid == pytest.approx(o["min_bid"])
        status, body = await create(s, url, (await search(s, url, "bid"))[0]["id"], "usim:m:c1:1", -1)
        assert status == 400 and body["error"] == "invalid_price"


async def test_changing_the_bid_of_an_on_demand_instance_is_refused():
    emu = emulator()
    async with serve(emu) as url, session(emu) as s:
        o = (await search(s, url, "on-demand"))[0]
        _, body = await create(s, url, o["id"], "usim:m:c0:1", None)
        async with s.put(f"{url}/api/v0/instances/bid_price/{body['new_contract']}/", json={"price": 1.0}) as r:
            assert r.status == 400 and "on demand" in (await r.json())["msg"]


def test_the_market_is_drawn_apart_so_a_bid_changes_no_other_fault():
    """Paired rehearsals: the same label meets the same machines, pulls and crashes at a bid as on demand."""
    emu_a, emu_b = emulator(ROUGH), emulator(ROUGH)
    m = emu_a.machines[0]
    _, a = emu_a.create(m.offer_id, {"label": "usim:m:c0:1", "disk": 32})
    _, b = emu_b.create(emu_b.machines[0].offer_id, {"label": "usim:m:c0:1", "disk": 32, "price": m.dph_base})
    pa, pb = emu_a.instances[a["new_contract"]].plan, emu_b.instances[b["new_contract"]].plan
    first = emu_b.instances[b["new_contract"]].outbids[0].at
    assert [p for p in pa.phases if p.at < first] == [p for p in pb.phases if p.at < first]


def test_outbids_come_at_the_profiles_rate():
    market = load_faults("rough_market").market
    gaps = []
    for seed in range(300):
        drawn = outbids(market, rng_for(seed, "x"), 0.0)
        gaps.append(drawn[0].at)
    mean_h = sum(gaps) / len(gaps) / 3600
    assert mean_h == pytest.approx(1 / market.outbid_per_hour, rel=0.15)
    assert load_faults("calm_market").market.outbid_per_hour < market.outbid_per_hour


def test_a_bid_host_over_ssh_stops_itself_after_its_run_and_a_run_after_a_comeback_writes_its_events():
    """Over SSH the run starts when the controller starts it: a run that ends before the next outbid leaves the
    container to stop itself (it does not bill idle until the market stops it), and a run started on a host that
    came back runs until the outbid after that."""
    from usim_tui.emulator.market import Outbid
    from usim_tui.emulator.timeline import Phase, Plan, apply_outbids

    def plan() -> Plan:
        p = Plan([Phase(0.0, None), Phase(100.0, "running", "")])
        p.script = [(10.0, '@usim {"kind":"started"}'), (500.0, '@usim {"kind":"done"}')]
        p.script_end = (501.0, 0)
        return p

    quiet = plan()
    apply_outbids(quiet, [Outbid(50_000.0, 1.2, None)], 100.0)
    quiet.place_script(200.0)
    assert [p.actual for p in quiet.phases][-1] == "exited" and quiet.phases[-1].at == 200.0 + 501 + 1800
    assert all(not p.msg.startswith(OUTBID_MSG) for p in quiet.phases), "stopped itself before the market did"

    back = plan()
    apply_outbids(back, [Outbid(150.0, 1.2, 1000.0), Outbid(9000.0, 1.2, None)], 100.0)
    back.place_script(1200.0)
    assert [json.loads(line)["kind"] for _, line in back.events] == ["started", "done", "exit"], \
        "started after the comeback, it runs (the stop before it is history)"
    assert back.phase_at(1200.0 + 501 + 1800 + 1).actual == "exited"
