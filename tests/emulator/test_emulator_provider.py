"""VastProvider against the emulator over real loopback HTTP, on a shared virtual clock."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from usim_core.sweep import ProviderSettings
from usim_tui.emulator.faults import FaultProfile
from usim_tui.emulator.offers import MIN_BID_SHARE
from usim_tui.emulator.server import serve
from usim_tui.emulator.simssh import SimSSH
from usim_tui.emulator.state import Emulator
from usim_tui.fleet.clock import VirtualClock
from usim_tui.fleet.process.open import open_sweep
from usim_tui.fleet.providers.base import (
    EXITED,
    FAILED,
    LOADING,
    RUNNING,
    AuthError,
    LaunchSpec,
    NoCapacity,
    ProviderError,
    make_label,
)
from usim_tui.fleet.vast.provider import CreateUnconfirmed, VastProvider, resolve_api_key

ROOT = Path(__file__).resolve().parents[2]
KEY = "k-test-1234567890"
KEY2 = "k-test-other-0987"
SETTINGS = ProviderSettings(kind="vast")


def spec(cell: str, attempt: int = 1, **kw) -> LaunchSpec:
    return LaunchSpec(label=make_label("s", cell, attempt), sweep="s", cell=cell, attempt=attempt,
                      config={"seed": 1}, run_dir=f"runs/s/{cell}/{attempt}", **kw)


def provider(emu: Emulator, url: str, **kw) -> VastProvider:
    return VastProvider(SETTINGS, clock=emu.clock, api_key=KEY, base_url=url, sweep="s", **kw)


def emulator(**kw) -> Emulator:
    kw.setdefault("faults", FaultProfile(name="t"))
    return Emulator(VirtualClock(), api_keys=(KEY, KEY2), **{"gentle": True, **kw})


async def test_lifecycle_create_list_logs_destroy_and_billing():
    emu = emulator()
    async with serve(emu) as url:
        # the onstart bootstrap trains by itself (with `install: wheel` the run waits for a bring-up over SSH)
        p = VastProvider(SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0"}), clock=emu.clock,
                         api_key=KEY, base_url=url, sweep="s")
        a = await p.create(spec("a", env={"WANDB_API_KEY": "wandb-secret-value"}))
        b = await p.create(spec("b"))
        assert a.machine_id != b.machine_id, "a bought machine is excluded from the next pick"
        seen = {o.label: o for o in await p.list()}
        assert set(seen) == {a.label, b.label}
        assert "wandb-secret-value" not in json.dumps(seen[a.label].raw), "instance env is redacted"
        emu.clock.advance(150)                     # past provisioning + a normal image pull
        states = {o.state for o in await p.list()}
        assert states <= {LOADING, RUNNING}
        emu.clock.advance(4 * 3600)
        obs = {o.label: o for o in await p.list()}
        assert obs[a.label].state == EXITED
        log = await p.logs(obs[a.label].provider_id)
        kinds = [json.loads(line[6:])["kind"] for line in log.splitlines() if line.startswith("@usim ")]
        assert kinds[0] == "bootstrap" and kinds[-2:] == ["done", "exit"]
        spent_before = emu.spent()
        assert spent_before > 0
        for o in obs.values():
            await p.destroy(o.provider_id)
        await p.destroy(obs[a.label].provider_id)     # already gone counts as done
        assert await p.list() == []
        emu.clock.advance(3600)
        assert emu.spent() == pytest.approx(spent_before, abs=1e-3), "destroy ends all billing"
        assert await p.credit() == pytest.approx(emu.initial_credit - emu.spent(), abs=1e-3)
        await p.close()


async def test_list_pages_by_25_and_is_scoped_to_the_sweep():
    emu = emulator(rate_limits=True)
    async with serve(emu) as url:
        p = provider(emu, url, offer_cache_s=10_000)
        for i in range(30):
            await p.create(spec(f"c{i}"))
        other = VastProvider(SETTINGS, clock=emu.clock, api_key=KEY2, base_url=url, sweep="other")
        await other.create(LaunchSpec(label=make_label("other", "x", 1), sweep="other", cell="x", attempt=1,
                                      config={}, run_dir="r"))
        before = emu.calls.by_group.get("list", 0)
        listed = await p.list()
        assert len(listed) == 30 and all(o.label.startswith("usim:s:") for o in listed)
        assert emu.calls.by_group["list"] - before == 2, "one paged sweep: ceil(30/25) requests"
        assert emu.calls.rate_limited == 0, "the provider paces itself to the thresholds"
        await p.close()
        await other.close()


async def test_oci_failure_and_stuck_loading_map_to_states():
    emu = emulator(faults=FaultProfile(name="t", oci_error={"p": 1.0}))
    async with serve(emu) as url:
        p = provider(emu, url)
        await p.create(spec("a"))
        emu.clock.advance(120)
        (o,) = await p.list()
        assert o.state == FAILED and "OCI runtime create failed" in o.status_msg
        await p.close()


async def test_bad_key_is_an_auth_error_without_the_key():
    emu = emulator(auth_404=True)
    async with serve(emu) as url:
        bad = VastProvider(SETTINGS, clock=emu.clock, api_key="wrong-key-abcdef", base_url=url, sweep="s")
        with pytest.raises(AuthError) as exc:
            await bad.list()
        with pytest.raises(AuthError) as exc404:
            await bad.destroy("27071001")       # 404 auth_error on instance routes is auth, not "gone"
        for e in (exc.value, exc404.value):
            assert "wrong-key-abcdef" not in str(e)
        assert "wrong-key-abcdef" not in repr(bad)
        await bad.close()


async def test_a_list_without_instances_is_an_error_never_empty():
    async def deprecated(request):
        return web.json_response({"success": False, "error": "deprecated_endpoint", "msg": "use v1"})
    app = web.Application()
    app.router.add_get("/api/v1/instances/", deprecated)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    p = VastProvider(SETTINGS, clock=VirtualClock(), api_key=KEY, base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderError, match="deprecated_endpoint"):
        await p.list()
    await p.close()
    await runner.cleanup()


async def test_emulator_enforces_intervals_with_threshold_body_and_v0_list_is_deprecated():
    emu = emulator()
    async with serve(emu) as url, aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        async with s.get(url + "/api/v1/instances/") as r1:
            assert r1.status == 200
        async with s.get(url + "/api/v1/instances/") as r2:
            assert r2.status == 429 and "Retry-After" not in r2.headers
            assert "threshold=1" in await r2.text()
        async with s.get(url + "/api/v0/instances/?owner=me") as r3:
            assert (await r3.json())["error"] == "deprecated_endpoint"
        emu.clock.advance(2)
        async with s.get(url + '/api/v1/instances/?select_filters={"dph_total":{"lte":1}}') as r4:
            assert r4.status == 400
        async with s.get(url + "/api/v0/instances/999/?owner=me") as r5:
            assert r5.status == 200 and (await r5.json())["instances"] is None


async def test_provider_rides_out_429_bursts_and_5xx():
    emu = emulator(faults=FaultProfile(name="t", api={"burst_429_p": 0.3, "burst_len": 2, "error_5xx_p": 0.2}), seed=3)
    async with serve(emu) as url:
        p = provider(emu, url, max_tries=8)
        for _ in range(10):
            await p.list()
        assert emu.calls.faults > 0
        await p.close()


async def test_giving_up_waits_no_backoff_after_the_last_try():
    """Every answer a 5xx: max_tries calls, and max_tries - 1 back-offs between them (none after the last)."""
    emu = emulator(faults=FaultProfile(name="t", api={"error_5xx_p": 1.0}), seed=1)
    async with serve(emu) as url:
        p = provider(emu, url, max_tries=3)
        t0 = emu.clock.now()
        with pytest.raises(ProviderError, match="gave up after 3 tries"):
            await p.credit()
        waited = emu.clock.now() - t0
        await p.close()
    first, second = 2.0, 4.0            # _backoff(0), _backoff(1), each with up to 25% jitter; a third would be 8+
    assert first + second <= waited <= 1.25 * (first + second) + 3 * 1.0 + 1e-6   # plus the 1 s pacing per call


class DropFirstCreate(Emulator):
    """Answers nothing to the first create, after doing it (the create did happen); listings show it at once
    unless the emulator is made hostile."""
    dropped = False

    def api_fault(self):
        if not self.dropped and self.calls.by_group.get("create"):
            self.dropped = True
            return "drop"
        return None


async def test_create_without_an_answer_lists_by_label_and_never_buys_twice():
    emu = DropFirstCreate(VirtualClock(), faults=FaultProfile(name="t"), api_keys=(KEY,), gentle=True)
    async with serve(emu) as url:
        p = provider(emu, url)
        o = await p.create(spec("a"))
        assert len(emu.instances) == 1 and o.provider_id == str(next(iter(emu.instances)))
        await p.close()


async def test_a_create_unanswered_while_the_listing_lags_is_never_bought_again():
    """Vast's listing can show a new instance minutes after its create: a create that got no answer is left to
    the controller's listings (CreateUnconfirmed), never retried with a second purchase."""
    emu = DropFirstCreate(VirtualClock(), faults=FaultProfile(name="t"), api_keys=(KEY,))   # hostile: lagging
    async with serve(emu) as url:
        p = provider(emu, url)
        with pytest.raises(CreateUnconfirmed, match="not buying again"):
            await p.create(spec("a"))
        assert len(emu.instances) == 1, "bought once"
        (inst,) = emu.instances.values()
        assert [o.label for o in await p.list()] == [], "the listing does not show it yet"
        emu.clock.advance(inst.visible_at - emu.clock.now())
        assert [o.provider_id for o in await p.list()] == [str(inst.id)], "then it does"
        await p.close()


async def test_taken_offer_moves_to_the_next_and_long_onstart_is_refused():
    emu = emulator()
    async with serve(emu) as url:
        p1, p2 = provider(emu, url), provider(emu, url)
        await p2._search(spec("b"))           # p2 saw the catalogue before p1 bought its cheapest offer
        a = await p1.create(spec("a"))
        b = await p2.create(spec("b"))
        assert a.machine_id != b.machine_id and len(emu.instances) == 2
        long = provider(emu, url, onstart=lambda s: "x" * 5000)
        with pytest.raises(ProviderError, match="invalid_args"):
            await long.create(spec("c"))
        for x in (p1, p2, long):
            await x.close()


def test_api_key_resolution_order(tmp_path):
    xdg = tmp_path / "xdg"
    (xdg / "vastai").mkdir(parents=True)
    (xdg / "vastai" / "vast_api_key").write_text("from-xdg\n")
    (tmp_path / ".vast_api_key").write_text("from-home\n")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(xdg)}
    assert resolve_api_key("explicit", env) == "explicit"
    assert resolve_api_key(None, {**env, "VAST_API_KEY": "from-env"}) == "from-env"
    assert resolve_api_key(None, env) == "from-xdg"
    (xdg / "vastai" / "vast_api_key").unlink()
    assert resolve_api_key(None, env) == "from-home"
    (tmp_path / ".vast_api_key").unlink()
    with pytest.raises(AuthError, match="VAST_API_KEY"):
        resolve_api_key(None, env)


async def test_make_provider_scopes_the_listing_to_the_sweep(monkeypatch):
    from usim_tui.fleet.process.open import make_provider

    emu = emulator()
    async with serve(emu) as url:
        monkeypatch.setenv("VAST_API_KEY", KEY)
        monkeypatch.setenv("VAST_URL", url)
        mine = make_provider(SETTINGS, clock=emu.clock, sweep="s")
        other = make_provider(SETTINGS, clock=emu.clock, sweep="other")
        for i in range(26):       # the same account runs another sweep: more than a page of its instances
            await other.create(LaunchSpec(label=make_label("other", f"x{i}", 1), sweep="other", cell=f"x{i}",
                                          attempt=1, config={}, run_dir="r"))
        await mine.create(spec("a"))
        before = emu.calls.by_group.get("list", 0)
        assert [o.label for o in await mine.list()] == [make_label("s", "a", 1)]
        assert emu.calls.by_group["list"] - before == 1, "the label range is filtered by the server: one page"
        await mine.close()
        await other.close()


async def test_paced_creates_do_not_starve_the_polls(tmp_path):
    """Creates are paced (4.5 s each): one tick launches only what fits in a poll interval, and each attempt
    records when it was really created, so its start-up deadline is not cut short."""
    import copy

    from usim_core.sweep import Cell, expand

    base = expand(ROOT / "configs/sweeps/overnight_sota.yaml")
    sweep = copy.copy(base)
    sweep.spec = base.spec.model_copy(update={"name": "s", "concurrency": 20, "budget": 100.0})
    sweep.cells = [Cell(name=f"c{i}", round="r", tags=[], overrides={}, config=base.cells[0].config,
                        config_hash=f"{i:04d}") for i in range(20)]
    emu = emulator()
    async with serve(emu) as url:
        p = provider(emu, url, ssh_key=tmp_path / "id_ed25519", ssh_session=SimSSH(emu))   # hosts on the clock
        ctl = open_sweep(sweep, provider=p, ledger=tmp_path / "l.sqlite", runs_root=tmp_path, clock=emu.clock,
                         poll_interval=30.0, run_preflight=False, log=lambda m: None, env={},
                         wheel=tmp_path / "rehearsal.whl").controller
        await ctl.tick()
        first = ctl.ledger.attempts("s")
        assert 3 <= len(first) <= 9, "about one poll interval of paced creates"
        created = [a.created_at for a in first]
        assert all(b - a >= 4.4 for a, b in zip(created, created[1:], strict=False))
        while len(ctl.ledger.attempts("s")) < 20:
            await emu.clock.sleep(30.0)
            await ctl.tick()
        await emu.clock.sleep(600.0)
        await ctl.tick()
        assert all(a.reason is None for a in ctl.ledger.attempts("s")), "nobody timed out at start-up"
        await p.close()


async def test_an_ssh_host_gets_secrets_over_ssh_only_never_in_the_create_payload(tmp_path):
    """With SSH the run's env goes in the start's 0600 file; the create payload (Vast keeps it as the instance's
    extra_env, shown by every `show instances`) carries no secret. Without SSH the onstart script needs it."""
    emu = emulator()
    env = {"WANDB_API_KEY": "wandb-secret-value", "WANDB_MODE": "online"}
    async with serve(emu) as url:
        ssh = provider(emu, url, ssh=True, ssh_key=tmp_path / "id_ed25519")
        await ssh.create(spec("a", env=env))
        plain = provider(emu, url, ssh=False)
        await plain.create(spec("b", env=env))
        await ssh.close()
        await plain.close()
    by = {i.label: i.env for i in emu.instances.values()}
    assert by[make_label("s", "a", 1)] == {"WANDB_MODE": "online"}
    assert by[make_label("s", "b", 1)] == env


async def test_offers_are_read_from_either_reliability_field_and_rows_with_neither_are_said():
    """The current vastai lists offers' `reliability`, older clients `reliability2`: reading one alone rejected
    every offer that carried the other (the night ends as "no capacity")."""
    for field in ("reliability", "reliability2", "mixed"):
        emu = emulator(gentle=False, faults=FaultProfile(name="t", vast={"reliability_field": field}))
        async with serve(emu) as url:
            p = provider(emu, url)
            offers = await p._search(spec("a"))
            assert offers and p.unrated_offers == 0, field
            await p.close()
    emu = emulator()
    async with serve(emu) as url:
        p = provider(emu, url)
        unrated = [{k: v for k, v in o.items() if not k.startswith("reliability")} for o in emu.offers(64)]
        p._offers[1, "on-demand"] = (emu.clock.now(), unrated)   # the cached search for 1-GPU hosts on demand
        with pytest.raises(NoCapacity, match="carried no reliability field"):
            await p.create(spec("a"))
        assert p.unrated_offers == len(unrated)
        await p.close()


async def test_many_destroys_go_64_ids_a_call():
    emu = emulator()
    async with serve(emu) as url:
        p = provider(emu, url)
        ids = []
        for _ in range(130):
            offer = emu.offers(64)[0]["id"]
            status, body = emu.create(offer, {"label": "usim:s:c:1", "disk": 64})
            assert status == 200
            ids.append(str(body["new_contract"]))
        before = emu.calls.by_group.get("destroy", 0)
        await p.destroy_many(ids)
        assert emu.calls.by_group["destroy"] - before == 3, "ceil(130 / 64) bulk calls"
        assert all(emu.instances[int(i)].destroyed_at is not None for i in ids)
        await p.close()


async def test_interruptible_pricing_rents_at_a_bid_over_min_bid_capped_under_the_on_demand_price():
    emu = emulator()
    async with serve(emu) as url:
        settings = SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0", "pricing": "interruptible",
                                               "bid_margin": 1.2, "max_bid_share": 0.9})
        p = VastProvider(settings, clock=emu.clock, api_key=KEY, base_url=url, sweep="s")
        obs = await p.create(spec("a"))
        inst = emu.instances[int(obs.provider_id)]
        offer = inst.machine.offer(inst.disk)
        assert inst.bid == pytest.approx(round(offer["min_bid"] * 1.2, 4)) == obs.raw["bid"]
        assert inst.bid <= 0.9 * offer["dph_base"]
        assert obs.price_per_hour == pytest.approx(inst.bid + offer["storage_total_cost"])
        assert obs.price_per_hour < offer["dph_total"], "cheaper than renting it on demand"
        emu.clock.advance(3600)
        emu.instances[int(obs.provider_id)].machine.dph_base *= 3   # whatever a listing says of it later
        (listed,) = await p.list()
        assert listed.price_per_hour == pytest.approx(inst.bid + offer["storage_total_cost"]), \
            "the bid it placed, never read back from a listing"
        await p.close()


async def test_a_bid_search_shows_interruptible_prices_so_the_cap_and_the_saving_come_from_the_on_demand_search():
    """Reproduced against vastai's source: a `type: bid` search shows interruptible pricing in dph_base and dph_total
    (`search offers --type`: "Show ... 'bid'(interruptible) pricing"). usim read them as the on-demand price: its
    cap, max_bid_share of that, fell under every bid (no interruptible offer found), and the on-demand figure
    the report's saving is reckoned from was the bid price."""
    emu = emulator()
    async with serve(emu) as url:
        settings = SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0", "pricing": "interruptible",
                                               "bid_margin": 1.2, "max_bid_share": 0.9})
        said: list[str] = []
        p = VastProvider(settings, clock=emu.clock, api_key=KEY, base_url=url, sweep="s", log=said.append)
        obs = await p.create(spec("a"))
        inst = emu.instances[int(obs.provider_id)]
        on_demand = inst.machine.offer(inst.disk)   # the machine as an on-demand search lists it
        assert inst.bid is not None and inst.bid > on_demand["min_bid"]
        assert obs.raw["on_demand_per_hour"] == pytest.approx(on_demand["dph_total"])
        assert obs.raw["on_demand_per_hour"] > obs.price_per_hour, "the saving against on demand is positive"
        assert p.bid_cap(obs.provider_id) == pytest.approx(round(0.9 * on_demand["dph_base"], 4))
        assert not any("no on-demand price" in line for line in said), "every bid offer's machine was found"
        await p.close()


async def test_a_bid_offer_whose_machine_no_on_demand_search_lists_is_not_bid_on_and_said():
    emu = emulator()
    async with serve(emu) as url:
        settings = SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0", "pricing": "interruptible"})
        said: list[str] = []
        p = VastProvider(settings, clock=emu.clock, api_key=KEY, base_url=url, sweep="s", log=said.append)
        listed = (await p._search(spec("a"), "bid"))[0]
        unknown = listed | {"machine_id": 10**9}   # a machine the market has no on-demand offer for
        await p._find_on_demand([listed, unknown], 1)
        assert p.bid_for(listed) is not None and p.bid_for(unknown) is None, "no cap known: no bid"
        assert any("1 of 2 interruptible offers have no on-demand price" in line for line in said)
        await p.close()


async def test_a_fallback_to_on_demand_after_a_bid_offer_was_taken_is_billed_on_demand():
    """Reproduced (a cold try): with interruptible-fallback, a bid create whose offer another renter took (404)
    left its bid on the label; the same create then rented on demand, and the listing adopted the stale bid for
    that on-demand instance: billed at the bid, with a bid cap it could be 'raised' to."""
    emu = emulator()
    async with serve(emu) as url:
        settings = SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0", "pricing": "interruptible-fallback"})
        p = VastProvider(settings, clock=emu.clock, api_key=KEY, base_url=url, sweep="s")
        (first, *_) = await p._search(spec("a"), "bid")
        p._offers[1, "bid"] = (emu.clock.now(), [first])   # the cached bid search: one offer...
        status, _ = emu.create(first["id"], {"label": "someone:else", "disk": 64})   # ...which another renter takes
        assert status == 200
        for m in emu.machines:   # and every other machine clears far above any bid this sweep may place
            m.floor, m.floor_until = m.dph_base * 10, math.inf
        obs = await p.create(spec("a"))
        inst = emu.instances[int(obs.provider_id)]
        assert inst.bid is None and obs.raw["bid"] is None, "rented on demand"
        (listed,) = await p.list()
        assert listed.raw.get("bid") is None and p.bid_cap(listed.provider_id) is None
        assert listed.price_per_hour == pytest.approx(inst.dph_total), "billed on demand, not at the stale bid"
        await p.close()


async def test_an_attempt_the_launcher_sends_on_demand_rents_on_demand_though_bid_offers_fit():
    emu = emulator()
    async with serve(emu) as url:
        settings = SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0", "pricing": "interruptible-fallback"})
        p = VastProvider(settings, clock=emu.clock, api_key=KEY, base_url=url, sweep="s")
        assert await p._search(spec("a"), "bid"), "bid offers fit"
        obs = await p.create(dataclasses.replace(spec("a"), on_demand=True))
        assert emu.instances[int(obs.provider_id)].bid is None and obs.raw["bid"] is None
        await p.close()


async def test_no_bid_offer_fits_interruptible_says_so_and_the_fallback_rents_on_demand():
    emu = emulator()
    async with serve(emu) as url:
        # a bid of 0.95 of the on-demand price (min_bid times this margin) passes 0.9 of it on every offer
        margin = 0.95 / MIN_BID_SHARE
        base = SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0", "bid_margin": margin, "max_bid_share": 0.9})
        strict = VastProvider(base.model_copy(update={"pricing": "interruptible"}), clock=emu.clock, api_key=KEY,
                              base_url=url, sweep="s")
        with pytest.raises(NoCapacity, match="no interruptible 1x RTX 4090 offer"):
            await strict.create(spec("a"))
        await strict.close()
        emu.clock.advance(10)
        said: list[str] = []
        fallback = VastProvider(base.model_copy(update={"pricing": "interruptible-fallback"}), clock=emu.clock,
                                api_key=KEY, base_url=url, sweep="s", log=said.append)
        obs = await fallback.create(spec("b"))
        assert emu.instances[int(obs.provider_id)].bid is None and obs.raw["bid"] is None
        assert any("renting on demand" in line for line in said)
        await fallback.close()


async def test_an_unanswered_create_at_a_bid_keeps_its_bid_when_its_instance_is_found_by_label():
    """Reproduced on main: an interruptible create that got no answer, its instance found by label (at once, or
    by a later listing), billed at dph_total and shown as on demand: the bid it was sent with was forgotten."""
    settings = SETTINGS.model_copy(update={"install": "usim-sweeps==0.1.0", "pricing": "interruptible"})
    for gentle in (True, False):   # found by the create's own look, or left to the controller's listings
        emu = DropFirstCreate(VirtualClock(), faults=FaultProfile(name="t"), api_keys=(KEY,), gentle=gentle)
        async with serve(emu) as url:
            p = VastProvider(settings, clock=emu.clock, api_key=KEY, base_url=url, sweep="s")
            try:
                obs = await p.create(spec("a"))
            except CreateUnconfirmed:
                (inst,) = emu.instances.values()
                emu.clock.advance(inst.visible_at - emu.clock.now())
                (obs,) = await p.list()
            inst = emu.instances[int(obs.provider_id)]
            assert inst.bid is not None and obs.raw["bid"] == inst.bid, "the bid it was sent with"
            assert obs.price_per_hour == pytest.approx(inst.bid + inst.storage_per_hour)
            assert obs.raw["on_demand_per_hour"] == pytest.approx(inst.dph_total)
            assert p.bid_cap(obs.provider_id) is not None, "and it may be raised when outbid"
            await p.close()
