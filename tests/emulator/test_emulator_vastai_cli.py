"""The real `vastai` CLI (1.9.1) against the emulator: it must understand every answer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from usim_core.sweep import ProviderSettings
from usim_tui.emulator.faults import FaultProfile
from usim_tui.emulator.server import serve
from usim_tui.emulator.state import Emulator
from usim_tui.fleet.hosts.keys import ensure_key
from usim_tui.fleet.vast.provider import VastProvider

KEY = "cli-test-key-123456"
VASTAI = str(Path(sys.executable).with_name("vastai"))


async def vastai(home: Path, url: str, *args: str) -> tuple[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "VAST_URL": url, "VASTAI_NO_UPDATE_CHECK": "1", "CI": "1"}
    proc = await asyncio.create_subprocess_exec(
        VASTAI, "--url", url, "--api-key", KEY, "--raw", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


def loads(text: str):
    return json.loads(text[text.index(next(c for c in text if c in "[{")):])


@pytest.mark.slow
async def test_vastai_cli_round_trip(tmp_path):
    emu = Emulator(faults=FaultProfile(name="t", provisioning_s=(0.1, 0.2), image_pull_s=(0.1, 0.2)), gentle=True,
                   api_keys=(KEY,))
    async with serve(emu) as url:
        out, _ = await vastai(tmp_path, url, "search", "offers", "gpu_name=RTX_4090 num_gpus=1 dph<0.45")
        offers = loads(out)
        assert offers and all(o["gpu_name"] == "RTX 4090" and o["dph_total"] < 0.45 for o in offers)

        offer = offers[0]["id"]
        out, _ = await vastai(tmp_path, url, "create", "instance", str(offer), "--image", "pytorch/pytorch",
                              "--disk", "32", "--label", "usim:cli:cell:1", "--onstart-cmd", "echo hi",
                              "--env", "-e FOO=bar -p 8080:8080")
        created = loads(out)
        iid = created["new_contract"]
        assert created["success"] and iid in emu.instances
        assert emu.instances[iid].env == {"FOO": "bar"} and emu.instances[iid].disk == 32

        await asyncio.sleep(1.0)
        out, _ = await vastai(tmp_path, url, "show", "instances")
        rows = loads(out)
        assert [r["id"] for r in rows] == [iid] and rows[0]["label"] == "usim:cli:cell:1"
        assert rows[0]["extra_env"] == {"FOO": "bar"}          # the CLI turned our [[k, v]] pairs into a dict

        # usim's provider sees the same instance through the same server
        p = VastProvider(ProviderSettings(kind="vast"), api_key=KEY, base_url=url, sweep="cli")
        (obs,) = await p.list()
        assert obs.provider_id == str(iid) and obs.machine_id == str(offers[0]["machine_id"])
        await p.close()

        out, _ = await vastai(tmp_path, url, "logs", str(iid))
        assert '"kind":"bootstrap"' in out, out      # fetched via request_logs -> result_url (404 first)
        assert "daemon:" not in out, "the container log carries no daemon lines"
        daemon, _ = await vastai(tmp_path, url, "logs", str(iid), "--daemon-logs")
        assert "daemon:" in daemon and f"instance {iid}" in daemon, daemon
        assert '"kind":"bootstrap"' not in daemon, "--daemon-logs is the daemon's log INSTEAD of the container's"
        p = VastProvider(ProviderSettings(kind="vast"), api_key=KEY, base_url=url, sweep="cli")
        assert '"kind":"bootstrap"' in await p.logs(str(iid)), "usim reads the container log by default"
        assert '"kind":"bootstrap"' not in await p.logs(str(iid), daemon=True)
        await p.close()
        # usim's key, registered by the vastai CLI, is found by usim's provider (listed first: no duplicate)
        pair = ensure_key(tmp_path / "usim-ssh" / "id_ed25519")
        await vastai(tmp_path, url, "create", "ssh-key", pair.public, "-y")
        await asyncio.sleep(1.1)   # the ssh-key calls share a 1 s minimum interval (the emulator answers 429)
        out, _ = await vastai(tmp_path, url, "show", "ssh-keys")
        assert pair.public.split()[1] in out and len(emu.account_keys) == 1
        p = VastProvider(ProviderSettings(kind="vast"), api_key=KEY, base_url=url, sweep="cli", ssh_key=pair)
        await p.ensure_ssh_key()
        await p.close()
        assert len(emu.account_keys) == 1

        out, err = await vastai(tmp_path, url, "destroy", "instance", str(iid), "-y")
        assert "error" not in err.lower()
        assert emu.live(iid) is None


@pytest.mark.slow
async def test_vastai_cli_rents_at_a_bid_and_changes_it(tmp_path):
    """`search offers --type bid`, `create instance --bid_price`, `change bid`: what the CLI sends, the emulator
    understands (the market: market.py)."""
    market = {"outbid_per_hour": 300.0, "clearing_rise": (1.2, 1.3), "back_p": 0.0}
    emu = Emulator(faults=FaultProfile(name="t", provisioning_s=(0.1, 0.2), image_pull_s=(0.1, 0.2), market=market),
                   gentle=True, api_keys=(KEY,))
    async with serve(emu) as url:
        out, _ = await vastai(tmp_path, url, "search", "offers", "--type", "bid", "gpu_name=RTX_4090 num_gpus=1")
        offers = loads(out)
        assert offers and all(o["is_bid"] and o["min_bid"] > 0 for o in offers)
        bid = round(offers[0]["min_bid"] * 1.05, 4)
        out, _ = await vastai(tmp_path, url, "create", "instance", str(offers[0]["id"]), "--image", "pytorch/pytorch",
                              "--disk", "16", "--label", "usim:cli:bid:1", "--bid_price", str(bid))
        iid = loads(out)["new_contract"]
        inst = emu.instances[iid]
        assert inst.bid == bid
        await asyncio.sleep(max(0.0, inst.outbids[0].at - emu.clock.now()) + 0.3)   # seconds at this rate
        assert emu.row(inst)["actual_status"] == "stopped"
        clearing = inst.clearing(emu.clock.now())
        await vastai(tmp_path, url, "change", "bid", str(iid))   # no price: a winning bid
        # it ran again at once (at this rate the market may outbid it again seconds later)
        assert inst.bid == clearing and any(ph.msg == "bid raised to the clearing price" for ph in inst.plan.phases)
        await vastai(tmp_path, url, "destroy", "instance", str(iid), "-y")
