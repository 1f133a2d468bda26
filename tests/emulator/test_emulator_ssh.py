"""SSH as the transport to a running host, end to end on the emulator: usim's key registered on the account,
the wheel built from this checkout pushed and installed in the instance's sandbox, the real `usim-core train`
started detached, events read over SSH from a byte offset, results pulled back atomically; a key that is not
on the account is refused by the emulated sshd."""

from __future__ import annotations

import asyncio
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml
from hostile_support import HOSTILE_FAST

from usim_core.sweep import ProviderSettings, expand
from usim_tui.emulator.faults import Timed
from usim_tui.emulator.server import serve
from usim_tui.emulator.state import Emulator
from usim_tui.fleet.control.host_runs import resume_point
from usim_tui.fleet.hosts.bring_up import bring_up
from usim_tui.fleet.hosts.keys import ensure_key
from usim_tui.fleet.hosts.run_script import host_run_dir
from usim_tui.fleet.hosts.ssh import PullFailed, SSHUnreachable
from usim_tui.fleet.hosts.wheel import build_wheel, sha256_of
from usim_tui.fleet.providers.base import RUNNING, HostProvider, LaunchSpec, make_label
from usim_tui.fleet.vast.provider import VastProvider

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssh-test-key-0123456789"
SECRET = "wandb-secret-abcdef0123456789"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    return build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


def test_wheel_is_this_checkout(wheel):
    path, sha = wheel
    assert path.name.startswith("usim_sweeps-") and path.suffix == ".whl"
    assert sha == sha256_of(path) and len(sha) == 64
    names = zipfile.ZipFile(path).namelist()
    assert "usim_core/cli.py" in names and "usim_tui/fleet/hosts/run_script.sh" in names
    meta = zipfile.ZipFile(path).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Name: usim-sweeps" in meta and 'Requires-Dist: scipy' in meta and "neuraloperator" in meta


def test_key_pair_is_private_and_stable(tmp_path):
    pair = ensure_key(tmp_path / "k" / "id_ed25519")
    assert (pair.path.stat().st_mode & 0o777) == 0o600 and pair.public.startswith("ssh-ed25519 ")
    assert ensure_key(pair.path).public == pair.public, "generated once, then reused"
    assert "PRIVATE" not in repr(pair) and pair.path.with_name("id_ed25519.pub").read_text().strip() == pair.public
    pair.path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        ensure_key(pair.path)


def tiny_sweep(tmp: Path) -> Path:
    path = tmp / "sshe2e.yaml"
    path.write_text(yaml.safe_dump({
        "name": "sshe2e", "base": str(ROOT / "configs/runs/burgers_tiny.yaml"), "budget": 1.0, "concurrency": 1,
        "set": {"stages.codec.max_steps": 6, "stages.operator.max_steps": 6,
                "stages.diffusion_residual.max_steps": 4, "stages.consistency_distill.max_steps": 4,
                "data.generate.n": 12, "eval.small.trajectories": 1, "eval.small.horizons": [1, 4],
                "eval.small.modes": ["operator"], "eval.full.enabled": False},
        "provider": {"kind": "vast"},
        "rounds": [{"name": "r", "list": {"one": {"seed": 3}}}],
    }))
    return path


def spec_for(tmp_path: Path) -> LaunchSpec:
    sweep = expand(tiny_sweep(tmp_path))
    (cell,) = sweep.cells
    config = dict(cell.config)
    return LaunchSpec(label=make_label(sweep.name, cell.name, 1), sweep=sweep.name, cell=cell.name, attempt=1,
                      config=config, run_dir=str(tmp_path / "runs"), env={"WANDB_API_KEY": SECRET})


async def wait_running(p: VastProvider, pid: str) -> None:
    for _ in range(100):
        obs = await p.show(pid)
        if obs and obs.state == RUNNING and obs.raw.get("ssh_port"):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("instance never ran")


async def wait_ssh(p: VastProvider, pid: str) -> None:
    """SSH refuses for a while after running (the unkind emulator, as Vast)."""
    for _ in range(100):
        try:
            await p.run_command(pid, "true", timeout_s=10)
            return
        except SSHUnreachable:
            await asyncio.sleep(0.2)
    raise AssertionError("SSH never answered")


async def read_until_done(p: VastProvider, pid: str, run_dir: str, deadline_s: float = 150) -> tuple[list[dict], list[int]]:
    events: list[dict] = []
    offsets = [0]
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        text, new = await p.read_events(pid, run_dir, offsets[-1])
        assert new == offsets[-1] + len(text.encode()), "the offset advances by what was read, whole lines only"
        if text:
            assert text.endswith("\n")
            events += [json.loads(line) for line in text.splitlines()]
            offsets.append(new)
        if any(e["kind"] == "exit" for e in events):
            return events, offsets
        await asyncio.sleep(1.0)
    raise AssertionError(f"no exit event in {deadline_s} s: {[e['kind'] for e in events]}")


@pytest.mark.slow
async def test_bring_up_train_read_and_pull_over_ssh(tmp_path, wheel):
    wheel_path, _ = wheel
    spec = spec_for(tmp_path)
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    async with serve(emu) as url:
        p = VastProvider(ProviderSettings(kind="vast"), api_key=KEY, base_url=url, sweep=spec.sweep,
                         ssh_key=tmp_path / "cfg" / "id_ed25519")
        assert isinstance(p, HostProvider) and p.ssh
        obs = await p.create(spec)
        (inst,) = emu.instances.values()
        assert "ssh" in inst.runtype and len(emu.account_keys) == 1, "key registered before the create"
        await p.ensure_ssh_key()
        p._key_registered = False
        await p.ensure_ssh_key()
        assert len(emu.account_keys) == 1, "registration is idempotent: listed first"
        await wait_running(p, obs.provider_id)
        await wait_ssh(p, obs.provider_id)
        # Reproduced on main: a session's plain python3 imported the laptop's torch and usim-core was on PATH
        # before anything was installed. A Vast session sees a bare environment: neither.
        bare = await p.run_command(obs.provider_id, "echo PATH=$PATH; command -v usim-core || echo no-usim-core; "
                                   "python3 -c 'import torch' 2>/dev/null && echo torch || echo no-torch")
        assert "opt/conda" not in bare and "no-usim-core" in bare and "no-torch" in bare, bare

        run_dir = host_run_dir(spec)
        env = {"WANDB_API_KEY": SECRET, "WANDB_MODE": "offline", "USIM_THREADS": "1", "USIM_NO_STOP": "1"}
        found = await bring_up(p, obs.provider_id, wheel=wheel_path, config=spec.config, run_dir=run_dir, env=env)
        assert found.python.endswith("opt/conda/bin/python3") and found.torch, "the image's python, found"
        p.forget_host(obs.provider_id)     # the connection drops: the detached trainer goes on regardless
        events, offsets = await read_until_done(p, obs.provider_id, run_dir)
        sandbox = Path(emu.workdir) / str(inst.id)
        pulled = tmp_path / "laptop" / "runs" / spec.sweep / spec.cell / "1"
        result = await p.pull(obs.provider_id, run_dir, pulled, max_checkpoint_bytes=1 << 30)
        small = tmp_path / "laptop" / "small"
        limited = await p.pull(obs.provider_id, run_dir, small, max_checkpoint_bytes=1000)
        container_log = await p.logs(obs.provider_id)
        daemon_log = await p.logs(obs.provider_id, daemon=True)
        await p.destroy(obs.provider_id)
        with pytest.raises(SSHUnreachable):
            await p.read_events(obs.provider_id, run_dir, 0)
        await p.close()

    kinds = [e["kind"] for e in events]
    assert kinds[0] == "started" and "eval" in kinds and "done" in kinds and kinds[-1] == "exit", kinds
    assert events[-1]["code"] == 0
    assert len(offsets) > 2, "events were read in more than one piece, each from the last offset"
    site = sandbox / "site"
    assert (site / "usim_core" / "cli.py").exists() and any(site.glob("usim_sweeps-*.dist-info")), \
        "the pushed wheel was installed in the host's sandbox"
    assert (site / "bin" / "usim-core").exists(), "the trainer command came from the wheel"
    assert "eval/small.json" in result.files and any(f.endswith(".png") for f in result.files), result
    assert any(f.startswith("checkpoints/consistency_distill") for f in result.files), result.files
    assert {"events.jsonl", "metrics.jsonl", "config.yaml"} <= set(result.files)
    assert result.bytes == sum((pulled / f).stat().st_size for f in result.files) and not result.skipped
    assert json.loads((pulled / "eval/small.json").read_text())
    assert not any(p.name.startswith(".") for p in pulled.parent.iterdir()), "no temp dir left behind"
    assert limited.skipped and "max_checkpoint_bytes" in limited.skipped[0]
    assert not any(f.startswith("checkpoints/") for f in limited.files) and "eval/small.json" in limited.files
    assert '"kind":"bootstrap"' in container_log and '"done"' in container_log, "the trainer's stdout too"
    assert "daemon:" in daemon_log and "bootstrap" not in daemon_log, "the daemon log is its own stream"
    assert "daemon:" not in container_log
    for path in sandbox.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".sh", ".yaml", ".jsonl", ".env"):
            assert SECRET not in path.read_text(errors="replace"), f"the W&B key leaked into {path}"
    assert not list((sandbox / ".usim").glob("start-*.env")), "the start's env file is removed once read"
    assert ((sandbox / ".usim" / "container.env").stat().st_mode & 0o777) == 0o600
    assert ((sandbox / ".usim" / "image.env").stat().st_mode & 0o777) == 0o600
    assert SECRET not in inst.onstart


async def ssh_instance(tmp_path: Path, url: str, sweep: str) -> tuple[VastProvider, Any]:
    """A provider on the emulator at `url` and one instance of it, running and answering SSH."""
    p = VastProvider(ProviderSettings(kind="vast"), api_key=KEY, base_url=url, sweep=sweep,
                     ssh_key=tmp_path / "k" / "id_ed25519")
    spec = LaunchSpec(label=make_label(sweep, "c", 1), sweep=sweep, cell="c", attempt=1, config={}, run_dir="x")
    obs = await p.create(spec)
    await wait_running(p, obs.provider_id)
    await wait_ssh(p, obs.provider_id)
    return p, obs


@pytest.mark.slow
async def test_a_pull_brings_the_small_files_first_and_keeps_them_when_the_checkpoint_fails(tmp_path):
    """Reproduced on main: the pull was all-or-nothing, so a checkpoint that did not come lost the events and
    metrics already copied."""
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    async with serve(emu) as url:
        p, obs = await ssh_instance(tmp_path, url, "pl")
        # a checkpoint that cannot be read as a file (a directory under the name): its transfer fails
        await p.run_command(obs.provider_id, "mkdir -p r/eval r/checkpoints/operator.pt && echo '{}' > r/events.jsonl "
                            "&& echo '{}' > r/metrics.jsonl && echo '{}' > r/eval/small.json")
        got = await p.pull(obs.provider_id, "r", tmp_path / "dest", 1 << 30)
        await p.close()
    assert {"events.jsonl", "metrics.jsonl", "eval/small.json"} <= set(got.files), got
    assert (tmp_path / "dest" / "events.jsonl").exists() and (tmp_path / "dest" / "eval" / "small.json").exists()
    assert got.skipped and "checkpoints/operator.pt" in got.skipped[0] and "the rest arrived" in got.skipped[0]


def write_epoch(run: Path, epoch: int, t: float) -> None:
    """What the trainer does at an epoch's end: its metric event at `t`, then `operator.last.pt` replaced whole
    (here holding just its step), dated `t`; and a mid-epoch metric event of the next epoch after it."""
    step = 10 * (epoch + 1)
    with (run / "events.jsonl").open("a") as f:
        for e in ({"kind": "metric", "stage": "operator", "epoch": epoch, "step": step, "t": t},
                  {"kind": "metric", "stage": "operator", "epoch": epoch + 1, "step": step + 4, "t": t + 0.5}):
            f.write(json.dumps(e) + "\n")
    tmp = run / "checkpoints" / ".operator.last.pt.tmp"
    tmp.write_text(str(step))
    os.utime(tmp, (t, t))
    os.replace(tmp, run / "checkpoints" / "operator.last.pt")


async def test_a_checkpoint_replaced_while_it_is_pulled_never_makes_the_resume_point_claim_more(tmp_path, monkeypatch):
    """Reproduced on main (the outbid end-to-end test failed one CI run in several): the trainer replaced its
    `.last.pt` at an epoch's end while the pull was reading the previous one; SFTP's preserve dated the pulled
    file by a stat taken after its copy (the new file's time), so the resume point claimed the next epoch's
    events for a checkpoint that held the earlier one."""
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    t0 = 1_700_000_000.0
    run = None
    opened = asyncssh.SFTPClient.open

    async def open_then_epoch_ends(self, path, *args, **kwargs):
        handle = await opened(self, path, *args, **kwargs)
        if os.fsdecode(path).endswith("operator.last.pt") and run is not None and not (run / "ended").exists():
            (run / "ended").touch()
            write_epoch(run, 1, t0 + 2.0)   # the next epoch ends while the open file is being read
        return handle

    monkeypatch.setattr(asyncssh.SFTPClient, "open", open_then_epoch_ends)
    async with serve(emu) as url:
        p, obs = await ssh_instance(tmp_path, url, "rp")
        run = Path(emu.workdir) / obs.provider_id / "r"
        (run / "checkpoints").mkdir(parents=True)
        write_epoch(run, 0, t0)
        dest = tmp_path / "resume"
        await p.pull_resume(obs.provider_id, "r", dest, 1 << 20)
        first = resume_point(dest)
        held = int((dest / "checkpoints" / "operator.last.pt").read_text())
        await p.pull_resume(obs.provider_id, "r", dest, 1 << 20)   # the same file, unchanged since: as it is now
        second = resume_point(dest)
        await p.close()
    assert (run / "ended").exists(), "the epoch ended during the first pull"
    assert first["step"] <= held, f"the resume point claims step {first['step']}; its checkpoint holds {held}"
    assert int((dest / "checkpoints" / "operator.last.pt").read_text()) == 20 and second["step"] == 20, second


@pytest.mark.slow
async def test_a_create_answered_past_its_timeout_buys_one_instance_end_to_end(tmp_path):
    """Over real SSH, with every create answered after the client gave up and the listing lagging it: one
    instance for the cell, the run finished, results pulled, nothing left running."""
    doc = yaml.safe_load(tiny_sweep(tmp_path).read_text())
    doc["provider"].update(create_timeout_s=2, create_settle_s=60)
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump({**doc, "name": "slowcreate"}))
    sweep = expand(path)
    slow = HOSTILE_FAST.model_copy(update={"vast": HOSTILE_FAST.vast.model_copy(update={
        "slow_create": Timed(p=1.0, duration_s=(4.0, 4.0)), "listing_lag_s": (6.0, 8.0)})})
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=slow)
    async with serve(emu) as url:
        led, why = await run_fleet(tmp_path, url, sweep)
    assert why == "done" and len(emu.instances) == 1, "one purchase for one attempt"
    (a,) = led.attempts(sweep.name)
    assert a.reason == "finished" and a.results and a.results.startswith("pulled ")
    kinds = [e.kind for e in led.attempt_events(a.id, limit=500)]
    assert "create_error" in kinds and "adopted" in kinds
    assert all(i.destroyed_at is not None for i in emu.instances.values())


async def test_unregistered_key_is_refused_and_pull_of_nothing_fails(tmp_path):
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    spec = LaunchSpec(label=make_label("k", "c", 1), sweep="k", cell="c", attempt=1, config={}, run_dir="x")
    async with serve(emu) as url:
        p = VastProvider(ProviderSettings(kind="vast"), api_key=KEY, base_url=url, sweep="k",
                         ssh_key=tmp_path / "mine" / "id_ed25519")
        obs = await p.create(spec)
        await wait_running(p, obs.provider_id)
        assert (await p.run_command(obs.provider_id, "pwd")).strip() == str(Path(emu.workdir) / obs.provider_id)
        with pytest.raises(PullFailed, match="does not exist"):
            await p.pull(obs.provider_id, "runs/none", tmp_path / "dest", 1 << 20)
        assert not (tmp_path / "dest").exists()
        assert await p.read_events(obs.provider_id, "runs/none", 0) == ("", 0)

        pid = obs.provider_id
        await p.run_command(pid, "sleep 300 > /dev/null 2>&1 < /dev/null & echo $! > plain.pid")
        # the start's env reaches the command (the W&B key travels this way only), never its command line
        await p.start(pid, 'echo $$ > detached.pid && echo "${#WANDB_API_KEY}" > key.len && exec sleep 300',
                      {"WANDB_API_KEY": "wandb-secret-in-env"})
        got = ""
        for _ in range(60):                      # the detached command writes it just after the start answers
            got = (await p.run_command(pid, "cat key.len 2>/dev/null; true")).strip()
            if got:
                break
            await asyncio.sleep(0.5)
        assert got == str(len("wandb-secret-in-env")), "the start's env reached the detached command"
        p.forget_host(pid)                       # the connection drops: sshd hangs up on its session
        alive = "for f in plain detached; do kill -0 $(cat $f.pid) 2>/dev/null && echo $f; done; true"
        running = (await p.run_command(pid, alive)).split()
        for _ in range(60):                      # the hangup reaches the session once the server sees the drop
            if "plain" not in running:
                break
            await asyncio.sleep(0.5)
            running = (await p.run_command(pid, alive)).split()
        assert running == ["detached"], "a plain background job dies with its connection; the detached start lives on"

        stranger = ensure_key(tmp_path / "other" / "id_ed25519").load()
        (inst,) = emu.instances.values()
        with pytest.raises(asyncssh.PermissionDenied):
            async with asyncssh.connect("127.0.0.1", inst.ssh_port, username="root", client_keys=[stranger],
                                        known_hosts=None, agent_path=None, config=None):
                pass
        q = VastProvider(ProviderSettings(kind="vast"), api_key=KEY, base_url=url, sweep="k",
                         ssh_key=tmp_path / "other" / "id_ed25519")
        with pytest.raises(SSHUnreachable, match="ssh root@127.0.0.1"):
            await q.run_command(obs.provider_id, "true")
        await p.destroy(obs.provider_id)
        await p.close()
        await q.close()
    assert os.environ.get("WANDB_API_KEY") is None


def two_cell_sweep(tmp: Path) -> Path:
    """A 1-GPU cell and a 2-GPU cell (its own round's num_gpus), both at once."""
    path = tiny_sweep(tmp)
    doc = yaml.safe_load(path.read_text())
    doc.update(name="sshfleet", concurrency=2, budget=3.0,
               rounds=[{"name": "solo", "list": {"a": {"seed": 3}}},
                       {"name": "duo", "num_gpus": 2, "list": {"b": {"seed": 4}}}])
    path.write_text(yaml.safe_dump(doc))
    return path


async def run_fleet(tmp_path: Path, url: str, sweep, on_tick=None):
    """The controller on SSH hosts until the sweep is done (at most 10 min): (its ledger, why it ended)."""
    from usim_tui.fleet.process.open import open_sweep

    p = VastProvider(sweep.spec.provider, api_key=KEY, base_url=url, sweep=sweep.name, ssh=True,
                     ssh_key=tmp_path / "cfg" / "id_ed25519")
    opened = open_sweep(sweep, provider=p, ledger=tmp_path / "ledger.sqlite", runs_root=tmp_path / "runs",
                        poll_interval=1.0, run_preflight=False, log=print,
                        env={"WANDB_MODE": "offline", "USIM_THREADS": "1", "USIM_NO_STOP": "1"})
    try:
        why = await asyncio.wait_for(opened.controller.run(on_tick=on_tick), 600)
    finally:
        await opened.close()
    return opened.ledger, why


@pytest.mark.slow
async def test_a_sweep_on_ssh_hosts_rents_each_cell_its_gpus_and_pulls_results_back_before_destroying(tmp_path):
    """The controller end to end on SSH hosts: the wheel built and recorded, each cell on a host with its own
    num_gpus (the 2-GPU cell on a 2-GPU offer, trained by torchrun over two gloo processes; the 1-GPU cell by one
    process), each billed at its own offer's price, events read over SSH, the run dir pulled into
    runs/<sweep>/<cell>/<attempt> on the laptop, and only then the instance destroyed."""
    sweep = expand(two_cell_sweep(tmp_path))
    assert {c.name: c.num_gpus for c in sweep.cells} == {"solo_a": 1, "duo_b": 2}
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    async with serve(emu) as url:
        led, why = await run_fleet(tmp_path, url, sweep)
    assert why == "done"
    assert len(led.sweep_row(sweep.name).wheel_sha256 or "") == 64
    intents = led.intents(sweep.name)
    attempts = {a.cell: a for a in led.attempts(sweep.name)}
    assert set(attempts) == {"solo_a", "duo_b"}
    for cell, gpus in (("duo_b", 2), ("solo_a", 1)):
        a = attempts[cell]
        assert a.state in ("destroyed", "destroying") and a.reason == "finished" and a.host_started_at, a
        assert a.results and a.results.startswith("pulled "), a.results
        inst = emu.instances[int(a.provider_id)]
        assert inst.machine.num_gpus == gpus, f"{cell} wants {gpus} GPUs, rented a {inst.machine.num_gpus}-GPU host"
        assert a.num_gpus == gpus
        assert a.price_per_hour == pytest.approx(inst.dph_total), "billed at its own offer's price"
        assert a.price_per_hour <= gpus * sweep.spec.provider.max_dph
        # the budget's spend against the emulator's exact bill: never less, and over it only by the polls around
        # each state change (billed at the higher rate; 1.03-1.05x here); the other cell's price would be 2x off
        billed = inst.billed(inst.destroyed_at)
        assert 0 < billed - 1e-5 <= a.spent <= billed * 1.5, (cell, a.spent, billed)
        sandbox = Path(emu.workdir) / str(inst.id)
        script = (sandbox / f"{host_run_dir(a)}.run.sh").read_text()
        local = Path(a.run_dir)
        started = [json.loads(x) for x in (local / "events.jsonl").read_text().splitlines()][0]
        assert started["kind"] == "started" and started["processes"] == gpus and started["device"] == "cpu"
        if gpus > 1:
            assert "-m torch.distributed.run --standalone --nproc-per-node=2 -m usim_core train" in script
        else:
            assert "torch.distributed.run" not in script and '-m usim_core train' in script
        assert (local / "eval" / "small.json").exists() and list(local.glob("eval/*.png"))
        events = led.attempt_events(a.id, limit=500)
        pulled_at = next(e.t for e in events if e.kind == "results")
        destroyed_at = next(i.t for i in intents if i.action == "destroy" and i.attempt_id == a.id)
        assert pulled_at <= destroyed_at, "destroyed before its results were back"
    assert all(i.destroyed_at is not None for i in emu.instances.values())
    assert {c.state for c in led.cells(sweep.name)} == {"finished"}


@pytest.mark.slow
async def test_a_pull_that_keeps_failing_records_results_lost_and_destroys_anyway(tmp_path, monkeypatch):
    from usim_tui.fleet.control import host_runs

    async def fails(self, *args, **kwargs):
        raise PullFailed("simulated: the host stopped answering sftp")

    monkeypatch.setattr(VastProvider, "pull", fails)
    monkeypatch.setattr(host_runs, "PULL_DEADLINE_S", 2.0)
    doc = yaml.safe_load(tiny_sweep(tmp_path).read_text())
    path = tmp_path / "lost.yaml"
    path.write_text(yaml.safe_dump({**doc, "name": "sshlost"}))
    sweep = expand(path)
    emu = Emulator(api_keys=(KEY,), execute=True, workdir=str(tmp_path / "hosts"), faults=HOSTILE_FAST)
    async with serve(emu) as url:
        led, why = await run_fleet(tmp_path, url, sweep)
    (a,) = led.attempts(sweep.name)
    assert a.results.startswith("results lost: simulated: the host stopped answering sftp"), a.results
    assert any(e.kind == "results_lost" for e in led.attempt_events(a.id, limit=500))
    assert a.state in ("destroyed", "destroying") and all(i.destroyed_at is not None for i in emu.instances.values())
