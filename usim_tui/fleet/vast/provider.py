"""Vast.ai over its REST API (aiohttp): offer search, create, the paged v1 list, destroy, logs; and over SSH
(asyncssh, host.py) once an instance runs: push, start detached, read events, pull results.

Follows reference/vast_api.md: Bearer auth with the key from VAST_API_KEY or the vastai CLI's key files;
per-endpoint minimum intervals paced on the controller's clock (a virtual clock in rehearsals, so nothing
sleeps in real time); backoff on 429 (parsing `threshold=`) and 5xx; one paged listing per poll scoped by the
sweep's label prefix; search+create serialised with bought offers and machines excluded for a while; a
create that did not answer is resolved by listing its label, never by buying again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import aiohttp

from usim_tui.fleet.clock import Clock, RealClock
from usim_tui.fleet.providers.base import (
    EXITED,
    FAILED,
    LOADING,
    OFFLINE,
    PENDING,
    RUNNING,
    SECRET_ENV,
    STOPPED,
    AuthError,
    BulkUnsupported,
    LaunchSpec,
    NoCapacity,
    Observed,
    ProviderError,
    RateLimited,
    parse_label,
)
from usim_tui.fleet.vast.host import VastHost

DEFAULT_URL = "https://console.vast.ai"
# seconds between calls per endpoint (vast_api.md section 6); search is 10/min; logs are unstated: 0.5 s
INTERVALS = {"search": 6.0, "create": 4.5, "list": 1.0, "show": 2.0, "destroy": 3.0, "put": 1.0,
             "logs": 0.5, "user": 1.0}
CREATE_PENALTY_S = 12.0
BULK_DESTROY_MAX = 64   # ids per bulk destroy, as the vastai CLI chunks them
OCI_SIGNATURE = "OCI runtime create failed"
_THRESHOLD = re.compile(r"threshold=([0-9.]+)")
# SSH through Vast's gateway (ssh_host/ssh_port) and direct where the machine allows it, as SkyPilot creates
# (vastai api/instances.py resolve_runtype(ssh=True, direct=True)). The onstart still runs at container start.
SSH_RUNTYPE = "ssh_direc ssh_proxy"


class CreateUnconfirmed(ProviderError):
    """A create got no answer and no instance carries its label (yet): list again before buying again."""


def resolve_api_key(explicit: str | None = None, env: dict[str, str] | None = None) -> str:
    """The key from the argument, VAST_API_KEY, $XDG_CONFIG_HOME/vastai/vast_api_key or ~/.vast_api_key."""
    env = os.environ if env is None else env
    if explicit:
        return explicit.strip()
    if env.get("VAST_API_KEY", "").strip():
        return env["VAST_API_KEY"].strip()
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    candidates = [xdg / "vastai" / "vast_api_key", home / ".vast_api_key"]
    for path in candidates:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
    raise AuthError("no Vast.ai API key: set VAST_API_KEY or run `vastai set api-key KEY` "
                    f"(looked in {', '.join(str(p) for p in candidates)})")


class _Secret:
    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'"


def state_of(row: dict[str, Any]) -> str:
    """Vast's actual_status / status_msg / the stopped triple -> a normalised state of providers/base.py."""
    actual = row.get("actual_status")
    msg = row.get("status_msg") or ""
    if OCI_SIGNATURE in msg:
        return FAILED
    if actual in (None, "created", "rebooting", "restarting", "scheduling"):
        return PENDING
    if actual == "loading":
        return LOADING
    if actual == "running":
        return RUNNING
    if actual in ("stopped", "frozen"):
        return STOPPED
    if actual == "exited":
        return EXITED
    return OFFLINE   # offline, unknown, anything new: it will never run


def is_outbid(row: dict[str, Any]) -> bool:
    return row.get("cur_state") == row.get("intended_status") == row.get("next_state") == "stopped" \
        and row.get("actual_status") == "stopped"


def _redact(row: dict[str, Any]) -> dict[str, Any]:
    """The row without secrets: instance env values (Vast echoes them) and the onstart text."""
    out = {k: v for k, v in row.items() if k not in ("onstart", "jupyter_token", "instance_api_key")}
    env = row.get("extra_env")
    if isinstance(env, list):
        out["extra_env"] = [[pair[0], "***"] for pair in env if isinstance(pair, list) and pair]
    return out


class VastProvider(VastHost):
    name = "vast"
    listing_lags = True      # a new instance may show in listings minutes after its create (docs/vast.md)
    logs_are_cheap = False   # each read is request_logs + a result_url fetch: the controller budgets them

    def __init__(self, settings: Any, *, clock: Clock | None = None, api_key: str | None = None,
                 base_url: str | None = None, sweep: str | None = None, onstart: Any = None,
                 timeout_s: float = 20.0, exclude_ttl_s: float = 600.0, offer_cache_s: float = 60.0,
                 max_tries: int = 5, seed: int = 0, log: Any = None, ssh: bool | None = None,
                 ssh_key: Any = None, ssh_session: Any = None) -> None:
        """ssh: register usim's key before creating (default: when settings.install is 'wheel', i.e. the
        controller brings runs up over SSH); ssh_key: a KeyPair or a private key path (default
        keys.default_key_path(): $USIM_SSH_KEY or ~/.config/usim/ssh/id_ed25519); ssh_session: what reaches the
        hosts (default an asyncssh SSHSession; the emulator's simulated hosts in a rehearsal)."""
        self.settings = settings
        self.clock = clock or RealClock()
        self._key = _Secret(resolve_api_key(api_key))
        self.base_url = (base_url or os.environ.get("VAST_URL") or DEFAULT_URL).rstrip("/")
        self.sweep = sweep
        self._onstart = onstart
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.exclude_ttl_s = exclude_ttl_s
        self.offer_cache_s = offer_cache_s
        self.max_tries = max_tries
        self._rng = random.Random(seed)
        self._log = log or (lambda msg: None)
        self._session: aiohttp.ClientSession | None = None
        self._once: aiohttp.ClientSession | None = None
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._buy = asyncio.Lock()
        self._excluded_offers: dict[int, float] = {}
        self._excluded_machines: dict[str, float] = {}
        self._bids: dict[str, float] = {}   # provider id -> the bid in force ($/h of its GPUs)
        self._bid_caps: dict[str, float] = {}   # provider id -> the most its bid may be raised to
        self._label_bids: dict[str, tuple[float, float, float]] = {}   # label -> (bid, cap, on-demand $/h) sent
        # (num_gpus, on-demand|bid) -> (searched at, offers)
        self._offers: dict[tuple[int, str], tuple[float, list[dict[str, Any]]]] = {}
        # (machine id, num_gpus) -> its on-demand offer: a bid search shows interruptible prices (docs/vast.md)
        self._on_demand: dict[tuple[str, int], dict[str, Any]] = {}
        self._running_since: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.unrated_offers = 0      # offers of the last search with no reliability field (said, not dropped silently)
        self.ssh = (getattr(settings, "install", "") == "wheel") if ssh is None else ssh
        self._init_host(Path(ssh_key) if isinstance(ssh_key, str) else ssh_key, ssh_session)

    def __repr__(self) -> str:
        return f"VastProvider(base_url={self.base_url!r}, sweep={self.sweep!r})"

    # ------------------------------------------------------------------ HTTP
    async def _http(self, once: bool = False) -> aiohttp.ClientSession:
        """The pooled session, or (once=True) one that never reuses a connection: aiohttp silently re-sends
        an idempotent-looking PUT when a reused connection drops, and a create PUT must never go twice."""
        if once:
            if self._once is None or self._once.closed:
                self._once = aiohttp.ClientSession(headers={"User-Agent": "usim/0.1.0"}, timeout=self.timeout,
                                                   connector=aiohttp.TCPConnector(force_close=True))
                self._once._retry_connection = False   # aiohttp 3.14 re-sends PUTs on ServerDisconnected
            return self._once
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "usim/0.1.0"}, timeout=self.timeout)
        return self._session

    async def _pace(self, group: str) -> None:
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:
            wait = self._next.get(group, float("-inf")) - self.clock.now()
            if wait > 0:
                await self.clock.sleep(wait)
            self._next[group] = self.clock.now() + INTERVALS.get(group, 1.0)

    async def _pause(self, attempt: int, floor: float = 0.0) -> None:
        """Back off before the next try; after the last one there is none to wait for."""
        if attempt + 1 < self.max_tries:
            await self.clock.sleep(self._backoff(attempt, floor))

    def _backoff(self, attempt: int, floor: float = 0.0) -> float:
        return max(floor, min(60.0, 2.0 * 2 ** attempt)) * (1 + 0.25 * self._rng.random())

    async def _call(self, group: str, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None, retry: bool = True,
                    timeout_s: float | None = None) -> tuple[int, Any]:
        """One API call with pacing and retries. Returns (status, parsed body) for answers that are not
        429/5xx; raises AuthError, RateLimited, or ProviderError (the key never appears in messages).
        `timeout_s` replaces the session's timeout for this call; it is kept on the provider's clock as well (a
        virtual clock's answer that came later than that is no answer, as a real timeout would have made it)."""
        session = await self._http(once=not retry)
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._key.value}", "Accept": "application/json"}
        per_call = {"timeout": aiohttp.ClientTimeout(total=timeout_s)} if timeout_s else {}
        last = ""
        for attempt in range(self.max_tries):
            await self._pace(group)
            self.calls[group] = self.calls.get(group, 0) + 1
            sent = self.clock.now()
            try:
                async with session.request(method, url, params=params, json=body, headers=headers,
                                           **per_call) as resp:
                    status, text = resp.status, await resp.text()
                if timeout_s and self.clock.now() - sent > timeout_s:
                    raise TimeoutError(f"answered after {self.clock.now() - sent:.0f} s")
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = f"{type(exc).__name__} on {method} {path}"
                if not retry:
                    raise ProviderError(f"Vast API: no answer to {method} {path} ({type(exc).__name__})") from None
                await self._pause(attempt)
                continue
            data = _parse(text)
            if status == 429:
                m = _THRESHOLD.search(text)
                threshold = float(m.group(1)) if m else None
                floor = CREATE_PENALTY_S if group == "create" else (threshold or 1.0)
                last = f"429 on {method} {path} (threshold={threshold})"
                await self._pause(attempt, floor)
                continue
            if status >= 500:
                last = f"HTTP {status} on {method} {path}"
                if not retry:
                    raise ProviderError(f"Vast API: HTTP {status} on {method} {path}; outcome unknown")
                await self._pause(attempt)
                continue
            _raise_auth(status, data, path)
            return status, data
        if last.startswith("429"):
            raise RateLimited(f"Vast API: still rate limited after {self.max_tries} tries: {last}")
        raise ProviderError(f"Vast API: gave up after {self.max_tries} tries: {last}")

    # ------------------------------------------------------------------ Provider
    def _prefix(self) -> str:
        return f"usim:{self.sweep}:" if self.sweep else "usim:"

    async def _list_rows(self, label: str | None = None) -> list[dict[str, Any]]:
        if label is not None:
            filters: dict[str, Any] = {"label": {"eq": label}}
        else:
            prefix = self._prefix()   # a string range is a prefix filter on a stored column
            filters = {"label": {"gte": prefix, "lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}}
        rows: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(10_000):
            params = {"select_filters": json.dumps(filters), "order_by": json.dumps([{"col": "id", "dir": "asc"}]),
                      "limit": "25"}
            if token:
                params["after_token"] = token
            status, data = await self._call("list", "GET", "/api/v1/instances/", params=params)
            if status != 200 or not isinstance(data, dict) or not isinstance(data.get("instances"), list):
                raise ProviderError(f"Vast API: instance list failed (HTTP {status}): {_describe(data)}; "
                                    "not treating it as 'no instances'")
            rows.extend(data["instances"])
            token = data.get("next_token")
            if not token:
                return rows
        raise ProviderError("Vast API: instance list did not end after 10000 pages")

    async def list(self) -> list[Observed]:
        rows = await self._list_rows()
        out = []
        for row in rows:
            parsed = parse_label(row.get("label"))
            if parsed is None or (self.sweep and parsed[0] != self.sweep):
                continue
            out.append(self._observe(row))
        return out

    def _adopt_bid(self, pid: str, label: str) -> None:
        """The instance of a create sent with a bid: billed at that bid, raised up to its cap."""
        if pid not in self._bids and label in self._label_bids:
            self._bids[pid], self._bid_caps[pid], _ = self._label_bids[label]

    def _observe(self, row: dict[str, Any]) -> Observed:
        pid = str(row.get("id"))
        self._adopt_bid(pid, row.get("label") or "")
        state = state_of(row)
        if state == RUNNING:
            self._running_since.setdefault(pid, self.clock.now())
        msg = row.get("status_msg") or ""
        if state == STOPPED and is_outbid(row) and "outbid" not in msg:
            msg = f"outbid (stopped): {msg}".strip()
        return Observed(
            provider_id=pid, label=row.get("label") or "", state=state, status_msg=msg,
            machine_id=None if row.get("machine_id") is None else str(row["machine_id"]),
            gpu=row.get("gpu_name"), price_per_hour=self._price_of(pid, row),
            storage_per_hour=float(row.get("storage_total_cost") or 0.0),
            created_at=row.get("start_date"), started_at=self._running_since.get(pid),
            raw={**_redact(row), **self._bid_fields(pid, row.get("label") or "")})

    def _bid_fields(self, pid: str, label: str) -> dict[str, Any]:
        """`bid` and `on_demand_per_hour` of an instance rented at a bid ({} on demand)."""
        if pid not in self._bids:
            return {}
        sent = self._label_bids.get(label)
        return {"bid": self._bids[pid], "on_demand_per_hour": sent[2] if sent else None}

    def _price_of(self, pid: str, row: dict[str, Any]) -> float:
        """$/h an instance bills: at a bid this provider placed, the bid plus storage (never read back from the
        listing: what a bid instance's dph_total holds is unverified, docs/vast.md); otherwise dph_total."""
        if pid in self._bids:
            return self._bids[pid] + float(row.get("storage_total_cost") or 0.0)
        return float(row.get("dph_total") or 0.0)

    def _max_dph(self, spec: LaunchSpec) -> float:
        """The most an offer for this attempt's host may cost: max_dph scaled to its GPUs (the launcher's
        figure, never above it)."""
        cap = self.settings.host_price(self.settings.max_dph, spec.num_gpus)
        return min(cap, spec.max_price_per_hour or cap)

    def bid_cap(self, provider_id: str) -> float | None:
        """The most this instance's bid may be raised to (max_bid_share of its offer's on-demand GPU price);
        None when this provider did not rent it at a bid (or a restarted controller no longer knows)."""
        return self._bid_caps.get(provider_id)

    async def change_bid(self, provider_id: str, price: float) -> None:
        """`PUT /api/v0/instances/bid_price/{id}/` (vastai change bid): the bid from now on, never above the
        instance's cap; the instance bills at it from now (the provider's own record, as for the first bid)."""
        cap = self.bid_cap(provider_id)
        if cap is None or price > cap + 1e-9:
            raise ProviderError(f"instance {provider_id}: bid ${price:.4f}/h refused (cap "
                                f"{'unknown' if cap is None else f'${cap:.4f}/h'}: provider.max_bid_share)")
        status, data = await self._call("put", "PUT", f"/api/v0/instances/bid_price/{int(provider_id)}/",
                                        body={"client_id": "me", "price": round(price, 4)})
        if status != 200 or (isinstance(data, dict) and (data.get("error") or data.get("success") is False)):
            raise ProviderError(f"Vast API: change bid of {provider_id} failed (HTTP {status}): {_describe(data)}")
        self._bids[provider_id] = round(price, 4)

    def on_demand_of(self, offer: dict[str, Any]) -> dict[str, Any] | None:
        """The on-demand offer of a bid offer's machine (same GPU count), from the on-demand search beside the bid
        search; None if that search did not list it. Never the bid offer's own dph_total: a `type: bid` search
        shows interruptible pricing there (vastai `search offers --type`; docs/vast.md)."""
        return self._on_demand.get((str(offer.get("machine_id")), int(offer.get("num_gpus") or 0)))

    def bid_for(self, offer: dict[str, Any]) -> float | None:
        """The bid for an interruptible offer: min_bid times bid_margin, None if that passes max_bid_share of its
        machine's on-demand GPU price, or that price is unknown (docs/vast.md: usim keeps each bid itself, never
        reads it back from a listing)."""
        s = self.settings
        listed = self.on_demand_of(offer)
        if listed is None:
            return None
        try:
            min_bid, on_demand = float(offer["min_bid"]), on_demand_gpu(listed)
        except (KeyError, TypeError, ValueError):
            return None
        bid = round(min_bid * s.bid_margin, 4)
        return bid if 0 < bid <= on_demand * s.max_bid_share else None

    async def _find_on_demand(self, bid_offers: list[dict[str, Any]], gpus: int) -> None:
        """The on-demand prices of the bid offers' machines: one on-demand search by machine id. A machine it
        does not list gets no bid (its cap is unknown), and the log says how many."""
        ids = sorted({int(o["machine_id"]) for o in bid_offers if o.get("machine_id") is not None})
        if not ids:
            return
        query = {"machine_id": {"in": ids}, "num_gpus": {"eq": gpus}, "type": "on-demand",
                 "limit": max(100, len(ids)), "allocated_storage": self.settings.disk_gb}
        found = await self._bundles(query, "on-demand prices of bid offers: search")
        for mid in ids:   # this search's answer replaces the last one's (a machine it no longer lists: unknown)
            self._on_demand.pop((str(mid), gpus), None)
        for o in found:
            if not o.get("is_bid"):
                self._on_demand[str(o.get("machine_id")), int(o.get("num_gpus") or 0)] = o
        unknown = sum(self.on_demand_of(o) is None for o in bid_offers)
        if unknown:
            self._log(f"{unknown} of {len(bid_offers)} interruptible offers have no on-demand price listed: "
                      "not bid on (the bid cap is a share of it)")

    async def _bundles(self, query: dict[str, Any], what: str) -> list[dict[str, Any]]:
        """`POST /api/v0/bundles/`: the offers the query finds; ProviderError naming `what` if the answer is not
        a list of offers."""
        status, data = await self._call("search", "POST", "/api/v0/bundles/", body=query)
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("offers"), list):
            raise ProviderError(f"Vast API: {what} failed (HTTP {status}): {_describe(data)}")
        return data["offers"]

    def _hourly(self, offer: dict[str, Any], kind: str) -> float:
        """What the offer bills an hour rented this way: on demand its dph_total, at a bid the bid plus storage."""
        if kind == "bid":
            bid = self.bid_for(offer)
            return 1e9 if bid is None else bid + float(offer.get("storage_total_cost") or 0.0)
        return float(offer.get("dph_total") or 1e9)

    async def _search(self, spec: LaunchSpec, kind: str = "on-demand") -> list[dict[str, Any]]:
        """Offers for the attempt's host (exactly spec.num_gpus GPUs) rented `kind` (on-demand or bid), cheapest
        first; one search per GPU count and kind every offer_cache_s."""
        s = self.settings
        gpus, max_dph = spec.num_gpus, self._max_dph(spec)
        now = self.clock.now()
        searched_at, offers = self._offers.get((gpus, kind), (float("-inf"), []))
        if now - searched_at > self.offer_cache_s or not offers:
            price_col = "min_bid" if kind == "bid" else "dph_total"
            query: dict[str, Any] = {
                "gpu_name": {"eq": s.gpu}, "num_gpus": {"eq": gpus}, price_col: {"lte": max_dph},
                "reliability": {"gte": s.min_reliability}, "disk_space": {"gte": s.disk_gb},
                "rentable": {"eq": True}, "rented": {"eq": False}, "external": {"eq": False},
                "order": [[price_col, "asc"]], "type": kind, "limit": 100,
                "allocated_storage": s.disk_gb}
            if s.verified:
                query["verified"] = {"eq": True}
            offers = await self._bundles(query, "offer search")
            if kind == "bid":
                await self._find_on_demand(offers, gpus)
            self._offers[gpus, kind] = (self.clock.now(), offers)
        for table in (self._excluded_offers, self._excluded_machines):
            for k, until in list(table.items()):
                if until <= now:
                    del table[k]
        fits = []
        unrated = 0
        for o in offers:   # re-check on our side: a filter the server ignored must not cost money
            rel = reliability(o)
            unrated += rel is None
            if o.get("gpu_name") != s.gpu or self._hourly(o, kind) > max_dph \
                    or (rel or 0.0) < s.min_reliability or int(o.get("num_gpus") or 0) != gpus:
                continue
            mid = str(o.get("machine_id"))
            if o.get("id") in self._excluded_offers or mid in self._excluded_machines or mid in spec.exclude_machines:
                continue
            fits.append(o)
        if unrated:
            self.unrated_offers = unrated
            self._log(f"{unrated} of {len(offers)} offers carry neither reliability nor reliability2: "
                      "treated as unreliable (docs/vast.md)")
        return sorted(fits, key=lambda o: self._hourly(o, kind))

    async def _offers_to_rent(self, spec: LaunchSpec) -> tuple[str, list[dict[str, Any]]]:
        """The offers to rent from, as the sweep's pricing says: at a bid, on demand, or at a bid and on demand
        when no bid offer fits."""
        pricing = self.settings.pricing
        if pricing == "on-demand" or spec.on_demand:
            return "on-demand", await self._search(spec)
        offers = await self._search(spec, "bid")
        if offers or pricing == "interruptible":
            return "bid", offers
        self._log("no interruptible offer fits: renting on demand (pricing: interruptible-fallback)")
        return "on-demand", await self._search(spec)

    def _exclude(self, offer_id: Any, machine_id: Any) -> None:
        until = self.clock.now() + self.exclude_ttl_s
        self._excluded_offers[offer_id] = until
        if machine_id is not None:
            self._excluded_machines[str(machine_id)] = until
        for key, (at, offers) in self._offers.items():
            self._offers[key] = (at, [o for o in offers if o.get("id") != offer_id])

    async def create(self, spec: LaunchSpec) -> Observed:
        s = self.settings
        if self._onstart is not None:
            onstart = self._onstart(spec)
        else:
            from usim_tui.fleet.vast.onstart import onstart_script
            onstart = onstart_script(spec, s)
        # over SSH the start carries the run's env (secrets included); the onstart script needs it otherwise
        env = {k: v for k, v in spec.env.items() if not (self.ssh and k in SECRET_ENV)}
        payload = {"client_id": "me", "image": s.image, "disk": s.disk_gb, "label": spec.label,
                   "env": env, "onstart": onstart, "runtype": SSH_RUNTYPE, "cancel_unavail": True}
        if self.ssh:
            await self.ensure_ssh_key()   # before the create: the account's keys are put on new instances
        async with self._buy:
            for _ in range(8):
                kind, offers = await self._offers_to_rent(spec)
                if not offers:
                    unrated = f"; {self.unrated_offers} offers carried no reliability field" if self.unrated_offers else ""
                    how = " interruptible" if kind == "bid" else ""
                    raise NoCapacity(f"no{how} {spec.num_gpus}x {s.gpu} offer under ${self._max_dph(spec):.2f}/h with reliability >= "
                                     f"{s.min_reliability} and {s.disk_gb} GB disk (after exclusions){unrated}")
                offer = offers[0]
                bid = self.bid_for(offer) if kind == "bid" else None
                body = payload if bid is None else {**payload, "price": bid}
                on_demand = self.on_demand_of(offer) if bid is not None else offer   # its machine's on-demand row
                if bid is not None and on_demand is not None:   # an unanswered create's instance, found later by
                    # label, bills at this bid
                    self._label_bids[spec.label] = (bid, round(on_demand_gpu(on_demand) * s.max_bid_share, 4),
                                                    float(on_demand.get("dph_total") or 0))
                else:   # on demand, maybe after a bid offer of this attempt was taken: no bid of its must stay
                    self._label_bids.pop(spec.label, None)
                try:
                    status, data = await self._call("create", "PUT", f"/api/v0/asks/{offer['id']}/",
                                                    body=body, retry=False, timeout_s=s.create_timeout_s)
                except (RateLimited, AuthError):
                    raise
                except ProviderError as exc:
                    # The create may have happened, and Vast's listing may show it minutes later: never buy
                    # again for this attempt. One look by label now; otherwise the controller's listings settle
                    # it (adopted when it shows up, closed as never created after provider.create_settle_s).
                    self._exclude(offer.get("id"), offer.get("machine_id"))
                    found = await self._list_rows(label=spec.label)
                    if found:
                        self._log(f"create of {spec.label} did not answer but the instance exists: adopted")
                        o = self._observe(min(found, key=lambda r: int(r.get("id") or 0)))
                        o.raw["create_unanswered"] = str(exc)
                        return o
                    raise CreateUnconfirmed(f"{exc}; no instance labelled {spec.label} listed yet: not buying "
                                            "again, the listing settles it") from None
                if status == 200 and isinstance(data, dict) and data.get("success") and data.get("new_contract"):
                    self._exclude(offer.get("id"), offer.get("machine_id"))
                    if bid is not None:
                        self._adopt_bid(str(data["new_contract"]), spec.label)
                    return Observed(
                        provider_id=str(data["new_contract"]), label=spec.label, state=PENDING,
                        machine_id=str(offer.get("machine_id")), gpu=offer.get("gpu_name"),
                        price_per_hour=self._hourly(offer, kind),
                        storage_per_hour=float(offer.get("storage_total_cost") or 0.0),
                        created_at=self.clock.now(),
                        raw={"offer_id": offer.get("id"), "bid": bid,
                             "on_demand_per_hour": float((on_demand or {}).get("dph_total") or 0)})
                err = data.get("error") if isinstance(data, dict) else None
                if isinstance(data, dict) and data.get("new_contract"):
                    await self.destroy(str(data["new_contract"]))   # a half-made contract: end it now
                if status in (404, 410) or err == "no_such_ask":
                    self._exclude(offer.get("id"), None)
                    continue
                raise ProviderError(f"Vast API: create on offer {offer.get('id')} refused (HTTP {status}): "
                                    f"{_describe(data)}")
            raise NoCapacity("every offer tried was taken before we could buy it")

    async def destroy(self, provider_id: str) -> None:
        self.forget_host(provider_id)
        status, data = await self._call("destroy", "DELETE", f"/api/v0/instances/{int(provider_id)}/", body={})
        if status == 200 and isinstance(data, dict) and data.get("success", True) and not data.get("error"):
            return
        if isinstance(data, dict) and data.get("error") == "no_such_instance":
            return   # already gone counts as destroyed
        raise ProviderError(f"Vast API: destroy {provider_id} failed (HTTP {status}): {_describe(data)}")

    async def destroy_many(self, provider_ids: list[str]) -> None:
        """Bulk destroys (`DELETE /api/v0/instances/` with `instance_ids`), 64 ids a call as `vastai destroy
        instances` sends them (cli/commands/instances.py). The answer's shape is unverified (docs/vast.md):
        anything but a 200 without an error raises, and the controller confirms every destroy by listing, so
        one that did not take is found and retried."""
        for pid in provider_ids:
            self.forget_host(pid)
        for i in range(0, len(provider_ids), BULK_DESTROY_MAX):
            chunk = [int(x) for x in provider_ids[i:i + BULK_DESTROY_MAX]]
            status, data = await self._call("destroy", "DELETE", "/api/v0/instances/", body={"instance_ids": chunk})
            if status == 200 and not (isinstance(data, dict) and (data.get("error") or data.get("success") is False)):
                continue
            error = BulkUnsupported if status in (404, 405) else ProviderError
            raise error(f"Vast API: bulk destroy of {len(chunk)} failed (HTTP {status}): {_describe(data)}")

    async def show(self, provider_id: str) -> Observed | None:
        status, data = await self._call("show", "GET", f"/api/v0/instances/{int(provider_id)}/",
                                        params={"owner": "me"})
        if status != 200 or not isinstance(data, dict) or "instances" not in data:
            raise ProviderError(f"Vast API: show {provider_id} failed (HTTP {status}): {_describe(data)}")
        return self._observe(data["instances"]) if data["instances"] else None

    async def logs(self, provider_id: str, tail: int = 1000, daemon: bool = False) -> str:
        """The container's log (what the onstart and the trainer print). daemon=True reads the host daemon's
        log INSTEAD (image pull, container create: where an OCI error is explained), as `vastai logs
        --daemon-logs` does (vastai cli/commands/misc.py, api/instances.py): use it only to diagnose a
        start-up failure."""
        body = {"tail": str(tail)}
        if daemon:
            body["daemon_logs"] = "true"
        status, data = await self._call("logs", "PUT", f"/api/v0/instances/request_logs/{int(provider_id)}/",
                                        body=body)
        if isinstance(data, dict) and data.get("error") == "no_such_instance":
            return ""
        url = data.get("result_url") if isinstance(data, dict) else None
        if status != 200 or not url:
            raise ProviderError(f"Vast API: request_logs {provider_id} failed (HTTP {status}): {_describe(data)}")
        session = await self._http()
        for _ in range(30):   # the log lands asynchronously; the URL is unauthenticated (no key sent)
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return await resp.text()
            except (TimeoutError, aiohttp.ClientError):
                pass
            await self.clock.sleep(0.3)
        raise ProviderError(f"Vast API: logs of {provider_id} not ready after 30 polls")

    async def credit(self) -> float:
        status, data = await self._call("user", "GET", "/api/v0/users/current")
        if status != 200 or not isinstance(data, dict):
            raise ProviderError(f"Vast API: current user failed (HTTP {status}): {_describe(data)}")
        return float(data.get("credit") or data.get("balance") or 0.0)

    async def close(self) -> None:
        await self.close_host()
        for session in (self._session, self._once):
            if session is not None:
                await session.close()
        self._session = self._once = None


def on_demand_gpu(offer: dict[str, Any]) -> float:
    """An offer's on-demand GPU price, $/h (dph_base, or dph_total less storage); KeyError/ValueError if absent."""
    return float(offer.get("dph_base") or float(offer["dph_total"]) - float(offer.get("storage_total_cost") or 0))


def reliability(offer: dict[str, Any]) -> float | None:
    """An offer's reliability from whichever field it carries: the current vastai CLI knows `reliability`, older
    ones aliased it to `reliability2` (vastai api/query.py); None when it carries neither."""
    for key in ("reliability", "reliability2"):
        if offer.get(key) is not None:
            return float(offer[key])
    return None


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def _describe(data: Any) -> str:
    if isinstance(data, dict):
        parts = [str(data.get(k)) for k in ("error", "msg", "message", "detail") if data.get(k)]
        return ": ".join(parts) or "unexpected answer"
    return str(data)[:200]


def _raise_auth(status: int, data: Any, path: str) -> None:
    text = _describe(data).lower()
    if status == 401 or (status in (403, 404) and ("auth_error" in text or "session expired" in text)):
        raise AuthError(f"Vast API: the API key was refused on {path} (HTTP {status}: {_describe(data)}); "
                        "check VAST_API_KEY or `vastai set api-key`")


def make_vast_provider(settings: Any, *, clock: Clock | None = None, sweep: str | None = None,
                       **kwargs: Any) -> VastProvider:
    """The factory make_provider calls: key from the environment or the vastai key files, VAST_URL honoured."""
    return VastProvider(settings, clock=clock, sweep=sweep, **kwargs)
