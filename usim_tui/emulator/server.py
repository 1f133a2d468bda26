"""The Vast.ai-compatible HTTP surface of the emulator (aiohttp.web, loopback only).

Same paths, JSON shapes, auth, 429 bodies and error codes as vast_api.md describes, so usim's VastProvider
and the real `vastai` CLI talk to it exactly as to console.vast.ai.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from usim_tui.emulator.offers import as_bid
from usim_tui.emulator.state import Emulator

STORED_COLUMNS = {"id", "label", "actual_status", "intended_status", "gpu_name", "verification", "machine_id"}
PAGE_MAX = 25
EMU = web.AppKey("emu", Emulator)
HTML_ERROR = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
              "<p>The origin did not answer in time.</p></body></html>")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(body: Any, status: int = 200) -> web.Response:
    # exactly `application/json`: the vastai CLI rejects `; charset=utf-8` on search results
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def error(status: int, code: str, msg: str) -> web.Response:
    return reply({"success": False, "error": code, "msg": msg}, status)


def _key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    return request.query.get("api_key")


def api(group: str, *, instance_route: bool = False) -> Callable[[Callable[..., Any]], Handler]:
    """Auth, rate limit and fault injection around one endpoint handler."""

    def wrap(fn: Callable[..., Any]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            emu: Emulator = request.app[EMU]
            ident = emu.identity(_key(request))
            if ident is None:
                if instance_route and emu.auth_404:
                    return error(404, "auth_error", "Invalid user key")
                return error(401, "auth_error", "Invalid user key")
            emu.calls.count(group)
            fault = emu.api_fault()
            if fault == "429":
                emu.calls.faults += 1
                return reply({"detail": f"API requests too frequent endpoint threshold={_threshold(group)}"}, 429)
            if fault == "5xx":
                emu.calls.faults += 1
                return error(503, "server_error", "Service temporarily unavailable")
            limited = emu.rate_check(ident, group)
            if limited is not None:
                emu.calls.rate_limited += 1
                return reply({"detail": f"API requests too frequent endpoint threshold={limited:g}"}, 429)
            response = await fn(request, emu)
            if fault == "drop":  # the work is done, the answer is lost (a create may have succeeded)
                emu.calls.faults += 1
                if request.transport is not None:
                    request.transport.close()
            return response

        return handler

    return wrap


def _instance(request: web.Request, emu: Emulator) -> Any:
    """The live instance the route names; answers 404 `no_such_instance` (raised) when it is gone."""
    iid = int(request.match_info["id"])
    inst = emu.live(iid)
    if inst is None:
        body = {"success": False, "error": "no_such_instance", "msg": f"Instance {iid} not found."}
        raise web.HTTPNotFound(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return inst


def _threshold(group: str) -> str:
    from usim_tui.emulator.state import THRESHOLDS
    return f"{THRESHOLDS.get(group, 1.0):g}"


def _json_param(request: web.Request, name: str, default: Any) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text=json.dumps({"success": False, "error": "invalid_args",
                                                  "msg": f"{name} is not valid JSON"}),
                                 content_type="application/json") from None


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------ filters
def _coerce(value: Any, like: Any) -> Any:
    if isinstance(like, bool):
        return value in (True, "true", "True", 1, "1") if not isinstance(value, bool) else value
    if isinstance(like, (int, float)) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def matches(row: dict[str, Any], filters: dict[str, Any]) -> bool:
    for col, cond in filters.items():
        if not isinstance(cond, dict) or col not in row:
            continue  # unknown columns and non-operator keys (order, type, limit) do not filter offers
        have = row[col]
        for op, want in cond.items():
            if isinstance(want, list):
                want = [_coerce(w, have) for w in want]
            else:
                want = _coerce(want, have)
            ok = _compare(op, have, want)
            if not ok:
                return False
    return True


def _compare(op: str, have: Any, want: Any) -> bool:
    try:
        if op in ("in", "notin"):
            return (have in want) == (op == "in")
        if op in ("eq", "neq"):
            return (have == want) == (op == "eq")
        if have is None:
            return False
        return {"gt": have > want, "gte": have >= want, "lt": have < want, "lte": have <= want}[op]
    except (KeyError, TypeError):
        return False


def _order(rows: list[dict[str, Any]], order: Any) -> list[dict[str, Any]]:
    for item in reversed(order or []):
        if isinstance(item, dict):
            col, direction = item.get("col"), item.get("dir", "asc")
        elif isinstance(item, (list, tuple)) and item:
            col, direction = item[0], item[1] if len(item) > 1 else "asc"
        else:
            continue
        rows.sort(key=lambda r, c=col: (r.get(c) is None, r.get(c) if r.get(c) is not None else 0),
                  reverse=str(direction).lower() == "desc")
    return rows


# ------------------------------------------------------------------ endpoints
async def gpu_names(request: web.Request) -> web.Response:
    return reply({"gpu_names": request.app[EMU].gpu_names()})


@api("user")
async def current_user(request: web.Request, emu: Emulator) -> web.Response:
    credit = round(emu.credit(), 6)
    return reply({"id": 4242, "username": "usim-emulator", "email": "emulator@localhost", "credit": credit,
                  "balance": credit, "can_pay": credit > 0, "has_billing": True, "role": "user",
                  "ssh_key": "", "sid": None, "is_team": False, "billaddress_line1": None})


async def _search(request: web.Request, emu: Emulator, query: dict[str, Any]) -> web.Response:
    storage = float(query.get("allocated_storage") or 10)
    # interruptible: the same machines, rented at a bid of at least min_bid, priced so in the listing
    rows = emu.offers(storage)
    rows = [as_bid(o) for o in rows] if query.get("type") == "bid" else rows
    rows = [o for o in rows if matches(o, query)]
    rows = _order(rows, query.get("order") or [["score", "desc"]])
    limit = int(float(query.get("limit") or 64))
    return reply({"offers": rows[:limit]})


@api("search")
async def search_bundles(request: web.Request, emu: Emulator) -> web.Response:
    return await _search(request, emu, await _body(request))


@api("search")
async def search_asks(request: web.Request, emu: Emulator) -> web.Response:
    body = await _body(request)
    query = dict(body.get("q") or body.get("select_filters") or {})
    for k in ("order", "limit", "type", "allocated_storage"):
        query.setdefault(k, body.get(k))
    return await _search(request, emu, query)


@api("create")
async def create(request: web.Request, emu: Emulator) -> web.Response:
    status, body = emu.create(int(request.match_info["offer"]), await _body(request))
    if status == 200 and emu.execute:
        from usim_tui.emulator.process import start
        start(emu, emu.instances[body["new_contract"]])
    if status == 200 and (delay := emu.instances[body["new_contract"]].answer_delay_s):
        await emu.clock.sleep(delay)   # made at once, answered late (a client may have given up by then)
    return reply(body, status)


@api("list")
async def list_v1(request: web.Request, emu: Emulator) -> web.Response:
    filters = _json_param(request, "select_filters", {})
    bad = sorted(set(filters) - STORED_COLUMNS)
    if bad:
        return error(400, "invalid_args", f"cannot filter on computed column(s) {', '.join(bad)}; "
                                          f"filterable: {', '.join(sorted(STORED_COLUMNS))}")
    limit = max(1, min(PAGE_MAX, int(float(request.query.get("limit", PAGE_MAX)))))
    offset = _decode_token(request.query.get("after_token"))
    if emu.html_page():
        return web.Response(status=200, text=HTML_ERROR, content_type="text/html")
    rows = [emu.row(i) for i in emu.instances.values() if emu.visible(i)]
    rows = _order([r for r in rows if matches(r, filters)], _json_param(request, "order_by", [["id", "asc"]]))
    page = rows[offset:offset + limit]
    counts: dict[str, int] = {}
    for r in rows:
        if r["label"]:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
    more = offset + limit < len(rows)
    return reply({"success": True, "instances_found": len(page), "total_instances": len(rows),
                  "label_counts": counts, "next_token": _encode_token(offset + limit) if more else None,
                  "instances": page})


def _encode_token(offset: int) -> str:
    return secrets.token_hex(4) + format(offset, "x")


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(token[8:], 16)
    except ValueError:
        raise web.HTTPBadRequest(text='{"success": false, "error": "invalid_args", "msg": "bad after_token"}',
                                 content_type="application/json") from None


@api("list_v0")
async def list_v0(request: web.Request, emu: Emulator) -> web.Response:
    return reply({"success": False, "error": "deprecated_endpoint",
                  "msg": "This endpoint is deprecated; use GET /api/v1/instances/."})


@api("show", instance_route=True)
async def show(request: web.Request, emu: Emulator) -> web.Response:
    inst = emu.live(int(request.match_info["id"]))
    return reply({"instances": emu.row(inst) if inst and emu.visible(inst) else None})


@api("destroy", instance_route=True)
async def destroy(request: web.Request, emu: Emulator) -> web.Response:
    inst = _instance(request, emu)
    if inst.executing:
        from usim_tui.emulator.process import kill
        kill(inst)
    emu.destroy(inst.id)
    return reply({"success": True})


@api("destroy")
async def destroy_bulk(request: web.Request, emu: Emulator) -> web.Response:
    """`DELETE /api/v0/instances/` with {"instance_ids": [...]} (vastai's api/instances.py destroy_instance with a
    list). The real answer's shape is not documented: this one mirrors the single destroy's."""
    ids = (await _body(request)).get("instance_ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        return reply({"success": False, "error": "invalid_args", "msg": "instance_ids: a list of ids"}, 400)
    for iid in ids:
        inst = emu.live(iid)
        if inst is None:
            continue
        if inst.executing:
            from usim_tui.emulator.process import kill
            kill(inst)
        emu.destroy(inst.id)
    return reply({"success": True})


@api("put", instance_route=True)
async def put_instance(request: web.Request, emu: Emulator) -> web.Response:
    inst = _instance(request, emu)
    body = await _body(request)
    if "label" in body:
        inst.label = str(body["label"]) or None
    state = body.get("state")
    if state in ("stopped", "running"):
        emu.set_state(inst, state)
        if state == "stopped" and inst.executing:
            from usim_tui.emulator.process import kill
            kill(inst, grace_s=2.0)
    elif state is not None:
        return error(400, "invalid_args", f"state must be running or stopped, got {state!r}")
    return reply({"success": True})


@api("put", instance_route=True)
async def change_bid(request: web.Request, emu: Emulator) -> web.Response:
    inst = _instance(request, emu)
    body = await _body(request)
    try:   # no price: "a winning bid price is used" (vastai change bid --help)
        price = None if body.get("price") is None else float(body["price"])
    except (TypeError, ValueError):
        return error(400, "invalid_args", f"price: a number in $/h, got {body.get('price')!r}")
    problem = emu.change_bid(inst, price)
    return error(400, "invalid_args", problem) if problem else reply({"success": True})


@api("logs", instance_route=True)
async def request_logs(request: web.Request, emu: Emulator) -> web.Response:
    inst = _instance(request, emu)
    body = await _body(request)
    try:
        tail = int(str(body.get("tail") or 1000))
    except ValueError:
        return error(400, "invalid_args", "tail must be a number")
    if str(body.get("daemon_logs", "")).lower() == "true":   # the daemon's log INSTEAD of the container's
        text = emu.daemon_text(inst, tail)
    else:
        text = emu.log_text(inst, tail)
    token = secrets.token_hex(12)
    emu.logs[token] = {"text": text, "polls": 0}
    if len(emu.logs) > 4000:
        for old in list(emu.logs)[:2000]:
            emu.logs.pop(old, None)
    origin = f"{request.scheme}://{request.host}"
    return reply({"success": True, "result_url": f"{origin}/emulator/logs/{token}.log"})


@api("put")
async def ssh_keys_list(request: web.Request, emu: Emulator) -> web.Response:
    """GET /api/v0/ssh/ (vastai api/keys.py show_ssh_keys). The real answer's shape is undocumented: a list."""
    return reply([{"id": k, "public_key": v, "created_at": 0} for k, v in emu.account_keys.items()])


@api("put")
async def ssh_keys_add(request: web.Request, emu: Emulator) -> web.Response:
    """POST /api/v0/ssh/ with {"ssh_key": <public key>} (vastai api/keys.py create_ssh_key)."""
    text = str((await _body(request)).get("ssh_key") or "").strip()
    if not text.startswith(("ssh-", "ecdsa-")) or len(text.split()) < 2:
        return error(400, "invalid_args", "ssh_key: an OpenSSH public key")
    return reply({"success": True, **emu.add_key(text)})


@api("put", instance_route=True)
async def ssh_attach(request: web.Request, emu: Emulator) -> web.Response:
    """POST /api/v0/instances/{id}/ssh/ with {"ssh_key": ...} (vastai api/keys.py attach_ssh)."""
    inst = _instance(request, emu)
    text = str((await _body(request)).get("ssh_key") or "").strip()
    if len(text.split()) < 2:
        return error(400, "invalid_args", "ssh_key: an OpenSSH public key")
    inst.ssh_keys.add(text)
    return reply({"success": True})


async def log_result(request: web.Request) -> web.Response:
    emu: Emulator = request.app[EMU]
    entry = emu.logs.get(request.match_info["token"])
    if entry is None:
        return web.Response(status=404, text="NoSuchKey")
    entry["polls"] += 1
    if entry["polls"] <= emu.log_polls:
        return web.Response(status=404, text="NoSuchKey")  # S3: not written yet
    return web.Response(text=entry["text"], content_type="text/plain")


def make_app(emu: Emulator) -> web.Application:
    app = web.Application()
    app[EMU] = emu
    r = app.router
    r.add_get("/api/v0/gpu_names/unique/", gpu_names)
    r.add_get("/api/v0/users/current", current_user)
    r.add_get("/api/v0/users/current/", current_user)
    r.add_post("/api/v0/bundles/", search_bundles)
    r.add_put("/api/v0/search/asks/", search_asks)
    r.add_put(r"/api/v0/asks/{offer:\d+}/", create)
    r.add_get("/api/v1/instances/", list_v1)
    r.add_get("/api/v0/instances/", list_v0)
    r.add_put(r"/api/v0/instances/request_logs/{id:\d+}/", request_logs)
    r.add_get(r"/api/v0/instances/{id:\d+}/", show)
    r.add_delete(r"/api/v0/instances/{id:\d+}/", destroy)
    r.add_delete("/api/v0/instances/", destroy_bulk)
    r.add_put(r"/api/v0/instances/{id:\d+}/", put_instance)
    r.add_put(r"/api/v0/instances/bid_price/{id:\d+}/", change_bid)
    r.add_get("/api/v0/ssh/", ssh_keys_list)
    r.add_post("/api/v0/ssh/", ssh_keys_add)
    r.add_post(r"/api/v0/instances/{id:\d+}/ssh/", ssh_attach)
    r.add_get(r"/emulator/logs/{token:[0-9a-f]+}.log", log_result)
    return app


@contextlib.asynccontextmanager
async def serve(emu: Emulator, port: int = 0, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run the emulator on a loopback port; yields its base URL (no trailing slash)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the emulator serves loopback only, not {host}")
    runner = web.AppRunner(make_app(emu), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    emu.base_url = f"http://{host}:{sock.getsockname()[1]}"
    try:
        yield emu.base_url
    finally:
        from usim_tui.emulator.process import kill
        for inst in emu.instances.values():
            if inst.executing:
                kill(inst)
        await runner.cleanup()
