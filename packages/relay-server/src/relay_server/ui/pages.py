"""Server-rendered pages of the web UI (SPEC S11.2).

Every page asks the JSON API (in process, with the browser's cookies, see :mod:`.api`) for its
data and renders a Jinja2 template with autoescaping. Writes happen in the browser: the vendored
``relay.js`` sends the forms as JSON to the same API with the CSRF header.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import Redirect
from markupsafe import Markup

from relay_core.domain import constants as c
from relay_server.controllers._support import package_version, server_state
from relay_server.ui.api import Api, ApiFailure

HERE: Final = Path(__file__).resolve().parent
TEMPLATES: Final = HERE / "templates"
STATIC: Final = HERE / "static"
STATIC_PATH: Final = "/ui/static"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["tojson_pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)

NAV: Final = (
    ("alerts", "/alerts", "Alerts"),
    ("calendar", "/calendar", "Calendar"),
    ("teams", "/teams", "Teams"),
    ("rotations", "/rotations", "Rotations"),
    ("routes", "/routes", "Routes"),
    ("channels", "/channels", "Channels"),
    ("silences", "/silences", "Silences"),
    ("categories", "/categories", "Categories"),
    ("subscriptions", "/subscriptions", "Subscriptions"),
    ("groups", "/groups", "Groups"),
)
INTAKE_SOURCES: Final = ("alertmanager", "grafana", "zabbix", "webhook")
SAMPLE_PAYLOADS: Final[Mapping[str, Any]] = {
    "alertmanager": {
        "version": "4",
        "status": "firing",
        "receiver": "relay",
        "groupKey": '{}:{alertname="TestAlert"}',
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "TestAlert", "severity": "warning"},
                "annotations": {"summary": "Test alert from curl"},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": "relay-test",
            }
        ],
    },
    "webhook": {
        "status": "firing",
        "title": "Test alert from curl",
        "severity": "warning",
        "fingerprint": "relay-test",
    },
    "grafana": {
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "TestAlert", "severity": "warning"},
                "annotations": {"summary": "Test alert from curl"},
                "fingerprint": "relay-test",
            }
        ],
    },
    "zabbix": {
        "event_id": "1",
        "event_value": "1",
        "trigger_name": "Test alert from curl",
        "severity": "Warning",
        "host": "test-host",
    },
}


def sample_curl(url: str, source: str, token: str) -> str:
    payload = json.dumps(SAMPLE_PAYLOADS.get(source, SAMPLE_PAYLOADS["webhook"]), separators=(",", ":"))
    return (
        f"curl -X POST {url} -H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d '{payload}'"
    )


# --- formatting ---------------------------------------------------------------------------------


def parse_iso(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _zone(name: Any) -> dt.tzinfo:
    try:
        return ZoneInfo(str(name or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


class Fmt:
    """Times in the user's time zone, UTC on hover (S11.1)."""

    def __init__(self, tz_name: str, now: dt.datetime) -> None:
        self.tz_name = tz_name or "UTC"
        self.tz = _zone(tz_name)
        self.now = now

    def local(self, value: Any) -> dt.datetime | None:
        parsed = parse_iso(value) if not isinstance(value, dt.datetime) else value
        return parsed.astimezone(self.tz) if parsed else None

    def time(self, value: Any, *, short: bool = False) -> Markup:
        parsed = parse_iso(value) if not isinstance(value, dt.datetime) else value
        if parsed is None:
            return Markup('<span class="muted">—</span>')
        local = parsed.astimezone(self.tz)
        utc = parsed.astimezone(dt.UTC)
        text = local.strftime("%H:%M" if short else "%Y-%m-%d %H:%M")
        return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
            utc.strftime("%Y-%m-%dT%H:%M:%SZ"), utc.strftime("%Y-%m-%d %H:%M:%S"), text
        )

    def age(self, value: Any) -> str:
        parsed = parse_iso(value)
        if parsed is None:
            return "—"
        seconds = max(int((self.now - parsed).total_seconds()), 0)
        if seconds < 60:
            return f"{seconds}s"
        if seconds < 3600:
            return f"{seconds // 60}m"
        if seconds < 86400:
            return f"{seconds // 3600}h {seconds % 3600 // 60}m"
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"

    def input_value(self, value: dt.datetime) -> str:
        """A ``datetime-local`` value in the user's zone."""
        return value.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M")

    def input_iso(self, value: Any) -> str:
        """A ``datetime-local`` value (``step=1``) in the user's zone for an API timestamp ('' when
        unset); seconds are kept so that saving an unchanged form does not move the time."""
        parsed = parse_iso(value)
        if parsed is None:
            return ""
        local = parsed.astimezone(self.tz)
        return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")


# --- rendering ------------------------------------------------------------------------------------


class Ui:
    """What a page builder gets: the API, the caller and the request."""

    def __init__(self, request: Request[Any, Any, Any], me: dict[str, Any]) -> None:
        self.request = request
        self.api = Api(request)
        self.me = me
        self.fmt = Fmt(str(me.get("timezone") or "UTC"), server_state(request).now())

    @property
    def query(self) -> Any:
        return self.request.query_params

    def arg(self, name: str) -> str:
        return str(self.request.query_params.get(name) or "").strip()

    def int_arg(self, name: str) -> int | None:
        text = self.arg(name)
        return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 2**53 else None


Built = tuple[str, dict[str, Any]] | Response[Any]
Builder = Callable[[Ui], Awaitable[Built]]


def html(template: str, status: int = 200, **context: Any) -> Response[str]:
    context.setdefault("static", STATIC_PATH)
    context.setdefault("version", package_version())
    body = _env.get_template(template).render(**context)
    return Response(
        body,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={"cache-control": "no-store"},
    )


def _login_redirect(request: Request[Any, Any, Any]) -> Redirect:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return Redirect(path="/login?" + urlencode({"next": target}), status_code=303)


async def render(request: Request[Any, Any, Any], page: str, build: Builder) -> Response[Any]:
    """Log-in check, build the page's context through the API, render; API errors become pages."""
    api = Api(request)
    try:
        me = await api.get("/api/auth/me")
    except ApiFailure as exc:
        if exc.status == 401:
            return _login_redirect(request)
        status = 503 if exc.status == 503 else 502
        return html(
            "error.html",
            status=status,
            me=None,
            nav=(),
            page=page,
            title="Unavailable",
            error=exc.body,
            status_code=exc.status,
        )
    ui = Ui(request, me)
    base = {"me": me, "fmt": ui.fmt, "nav": NAV, "page": page, "title": page.title()}
    try:
        built = await build(ui)
    except ApiFailure as exc:
        if exc.status == 401:
            return _login_redirect(request)
        status = exc.status if exc.status in (400, 403, 404, 409, 503) else 502
        return html("error.html", status=status, **base, error=exc.body, status_code=exc.status)
    if isinstance(built, Response):
        return built
    template, context = built
    return html(template, **{**base, **context})


# --- pages ------------------------------------------------------------------------------------------


@get("/", include_in_schema=False)
async def index(request: Request[Any, Any, Any]) -> Redirect:
    cookie = request.cookies.get(server_state(request).settings.auth.jwt_cookie_name)
    return Redirect(path="/alerts" if cookie else "/login", status_code=303)


_NEXT_RE: Final = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")


def _safe_next(value: str) -> str:
    """Only same-site relative paths (no open redirect)."""
    if _NEXT_RE.fullmatch(value) and not value.startswith("//"):
        return value
    return "/alerts"


@get("/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Response[str]:
    next_url = _safe_next(str(request.query_params.get("next") or "/alerts"))
    return html("login.html", title="Log in", next_url=next_url, me=None, nav=(), page="login")


# alerts ----------------------------------------------------------------------------------------


async def _teams(ui: Ui) -> list[dict[str, Any]]:
    teams: list[dict[str, Any]] = await ui.api.get("/api/teams", {"limit": 1000})
    return teams


SORTS: Final = (("activity", "Latest activity"), ("severity", "Severity"), ("created", "First seen"))


@functools.cache
def api_filters_by_group() -> bool:
    """Whether ``GET /api/alerts`` takes ``group_id`` (else the page narrows to the group's teams)."""
    from relay_server.controllers.alerts import AlertsController

    try:
        return "group_id" in inspect.signature(AlertsController.list_alerts.fn).parameters
    except (AttributeError, TypeError, ValueError):
        return False


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _day_start(day: dt.date, tz: dt.tzinfo) -> str:
    """Midnight at the start of ``day`` in the user's zone, as UTC for the API."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    return local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _alerts(ui: Ui) -> Built:
    trace_id = ui.arg("trace_id")
    trace = None
    if trace_id:
        trace = await ui.api.maybe(f"/api/explain/{quote(trace_id, safe='')}")
    statuses = [s for s in ui.query.getall("status", []) if s in c.GROUP_STATUSES]
    severity = ui.arg("severity") if ui.arg("severity") in c.SEVERITIES else ""
    team_id = ui.int_arg("team_id")
    category = ui.arg("category")[:64]
    search = ui.arg("search")[:200]
    page_no = ui.int_arg("page") or 1
    day_from, day_to = _day(ui.arg("from")), _day(ui.arg("to"))
    sort = ui.arg("sort") if ui.arg("sort") in dict(SORTS) else "activity"
    order = "asc" if ui.arg("order") == "asc" else "desc"
    teams = await _teams(ui)
    groups = await ui.api.get("/api/groups", {"limit": 1000})
    categories = await ui.api.maybe("/api/categories", {"limit": 1000}, [])
    active_group = ui.me.get("active_group_id")
    group_team_ids = {t["id"] for t in teams if active_group is None or t["group_id"] == active_group}
    include_test = ui.arg("include_test") in ("1", "true", "on")
    # What the page's own links carry (dates as the user typed them).
    shown: list[tuple[str, Any]] = [("status", s) for s in statuses]
    shown += [("severity", severity), ("team_id", team_id), ("category", category), ("search", search)]
    shown += [("include_test", "1" if include_test else None)]
    shown += [("from", day_from.isoformat() if day_from else None)]
    shown += [("to", day_to.isoformat() if day_to else None)]
    shown += [("sort", None if sort == "activity" else sort), ("order", None if order == "desc" else order)]
    query: list[tuple[str, Any]] = [(k, v) for k, v in shown if k not in ("include_test", "from", "to")]
    query += [("include_test", "true" if include_test else None)]
    # "to" is inclusive on the page: alerts first seen before the next day's midnight.
    query += [("from", _day_start(day_from, ui.fmt.tz) if day_from else None)]
    query += [("to", _day_start(day_to + dt.timedelta(days=1), ui.fmt.tz) if day_to else None)]
    query += [("sort", sort), ("order", order)]
    narrow = active_group is not None and team_id is None
    if narrow and api_filters_by_group():
        query.append(("group_id", active_group))
        narrow = False
    # Without the API's group filter the UI narrows a larger page to the active group's teams.
    query += [("page", 1 if narrow else page_no), ("page_size", 200 if narrow else 25)]
    result = await ui.api.get("/api/alerts", query)
    items = result["items"]
    pagination = result["pagination"]
    if narrow:
        items = [a for a in items if a["team_id"] in group_team_ids]
        pagination = {"page": 1, "page_size": 200, "total": len(items), "pages": 1 if items else 0}
    team_names = {t["id"]: t["name"] for t in teams}
    base_query = [(k, v) for k, v in shown if v not in (None, "")]
    return "alerts.html", {
        "title": "Alerts",
        "items": items,
        "pagination": pagination,
        "summary": result["summary"],
        "teams": [t for t in teams if t["id"] in group_team_ids],
        "team_names": team_names,
        "groups": groups,
        "active_group": active_group,
        "categories": categories,
        "statuses": c.GROUP_STATUSES,
        "severities": c.SEVERITIES,
        "sorts": SORTS,
        "filters": {
            "status": statuses,
            "severity": severity,
            "team_id": team_id,
            "category": category,
            "search": search,
            "include_test": include_test,
            "from": day_from.isoformat() if day_from else "",
            "to": day_to.isoformat() if day_to else "",
            "sort": sort,
            "order": order,
        },
        "filtered": bool(statuses or severity or team_id or category or search or day_from or day_to),
        "base_query": urlencode(base_query),
        "trace": trace,
        "trace_id": trace_id,
    }


@get("/alerts", include_in_schema=False)
async def alerts_page(request: Request[Any, Any, Any]) -> Response[Any]:
    return await render(request, "alerts", _alerts)


@get("/alerts/{group_id:int}", include_in_schema=False)
async def alert_page(request: Request[Any, Any, Any], group_id: FromPath[int]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        alert = await ui.api.get(f"/api/alerts/{group_id}")
        explain = await ui.api.maybe(f"/api/alerts/{group_id}/explain", default={"traces": []})
        subscriptions = await ui.api.maybe(f"/api/alerts/{group_id}/subscriptions")
        channels = {ch["id"]: ch for ch in await ui.api.maybe("/api/channels", {"limit": 1000}, [])}
        categories = await ui.api.maybe("/api/categories", {"limit": 1000}, [])
        return "alert.html", {
            "categories": [cat for cat in categories if cat.get("enabled", True)],
            "title": f"Alert #{alert['id']}",
            "alert": alert,
            "traces": explain.get("traces", []),
            "subscriptions": subscriptions,
            "channels": channels,
        }

    return await render(request, "alerts", build)


# calendar --------------------------------------------------------------------------------------


def _day_segments(
    events: list[dict[str, Any]], days: list[dt.date], tz: dt.tzinfo
) -> dict[dt.date, list[dict[str, Any]]]:
    out: dict[dt.date, list[dict[str, Any]]] = {d: [] for d in days}
    for event in events:
        start = parse_iso(event["start"])
        end = parse_iso(event["end"])
        if start is None or end is None:
            continue
        for day in days:
            lo = dt.datetime.combine(day, dt.time(), tzinfo=tz)
            hi = lo + dt.timedelta(days=1)
            if start < hi and end > lo:
                out[day].append(
                    {**event, "from": max(start, lo), "to": min(end, hi), "starts_before": start < lo}
                )
    return out


async def _calendar(ui: Ui) -> Built:
    teams = await _teams(ui)
    rotations = await ui.api.get("/api/rotations", {"limit": 1000})
    rotation_id = ui.int_arg("rotation_id")
    team_id = ui.int_arg("team_id")
    view = "month" if ui.arg("view") == "month" else "week"
    if rotation_id is None and team_id is None:
        if rotations:
            rotation_id = rotations[0]["id"]
        elif teams:
            team_id = teams[0]["id"]
    tz = ui.fmt.tz
    today = ui.fmt.now.astimezone(tz).date()
    try:
        anchor = dt.date.fromisoformat(ui.arg("start")) if ui.arg("start") else today
    except ValueError:
        anchor = today
    if view == "week":
        first = anchor - dt.timedelta(days=anchor.weekday())
        days = [first + dt.timedelta(days=i) for i in range(7)]
        prev_start, next_start = first - dt.timedelta(days=7), first + dt.timedelta(days=7)
    else:
        month_first = anchor.replace(day=1)
        first = month_first - dt.timedelta(days=month_first.weekday())
        following = (month_first + dt.timedelta(days=32)).replace(day=1)
        count = (following - first).days
        count += (7 - count % 7) % 7
        days = [first + dt.timedelta(days=i) for i in range(count)]
        prev_start = (month_first - dt.timedelta(days=1)).replace(day=1)
        next_start = following
        anchor = month_first
    start = dt.datetime.combine(days[0], dt.time(), tzinfo=tz)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    events: list[dict[str, Any]] = []
    scope_rotations: list[dict[str, Any]] = []
    if rotation_id is not None or team_id is not None:
        events = await ui.api.get(
            "/api/calendar",
            {
                "rotation_id": rotation_id,
                "team_id": team_id,
                "start": start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": end.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        scope_rotations = [
            r
            for r in rotations
            if (rotation_id is not None and r["id"] == rotation_id)
            or (rotation_id is None and r["team_id"] == team_id)
        ]
    oncall = []
    for rotation in scope_rotations:
        now = await ui.api.maybe(f"/api/rotations/{rotation['id']}/oncall")
        oncall.append({"rotation": rotation, "oncall": now})
    scope = {"rotation_id": rotation_id, "team_id": team_id, "view": view}

    def link(**change: Any) -> str:
        merged = {**scope, **change}
        return "/calendar?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})

    return "calendar.html", {
        "title": "Calendar",
        "teams": teams,
        "rotations": rotations,
        "rotation_id": rotation_id,
        "team_id": team_id,
        "view": view,
        "days": days,
        "today": today,
        "month": anchor.month,
        "anchor": anchor,
        "by_day": _day_segments(events, days, tz),
        "events": events,
        "oncall": oncall,
        "prev_link": link(start=prev_start.isoformat()),
        "next_link": link(start=next_start.isoformat()),
        "today_link": link(start=None),
        "week_link": link(view="week", start=anchor.isoformat()),
        "month_link": link(view="month", start=anchor.isoformat()),
    }


@get("/calendar", include_in_schema=False)
async def calendar_page(request: Request[Any, Any, Any]) -> Response[Any]:
    return await render(request, "calendar", _calendar)


# teams -----------------------------------------------------------------------------------------------


@get("/teams", include_in_schema=False)
async def teams_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        teams = await _teams(ui)
        groups = await ui.api.get("/api/groups", {"limit": 1000})
        return "teams.html", {
            "title": "Teams",
            "teams": teams,
            "groups": groups,
            "group_names": {g["id"]: g["name"] for g in groups},
        }

    return await render(request, "teams", build)


@get("/teams/{team_id:int}", include_in_schema=False)
async def team_page(request: Request[Any, Any, Any], team_id: FromPath[int]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        team = await ui.api.get(f"/api/teams/{team_id}")
        members = await ui.api.get(f"/api/teams/{team_id}/users")
        group_members = await ui.api.maybe(f"/api/groups/{team['group_id']}/users", default=[])
        taken = {m["user_id"] for m in members}
        # Team members must be active members of the team's group.
        candidates = [
            {"id": m["user_id"], "username": m["username"], "display_name": m["display_name"]}
            for m in group_members
            if m.get("active", True) and m["user_id"] not in taken
        ]
        return "team.html", {
            "title": team["name"],
            "team": team,
            "members": members,
            "candidates": candidates,
            "rotations": await ui.api.maybe("/api/rotations", {"team_id": team_id}, []),
            "routes": await ui.api.maybe("/api/routes", {"team_id": team_id}, []),
        }

    return await render(request, "teams", build)


# rotations -------------------------------------------------------------------------------------------


@get("/rotations", include_in_schema=False)
async def rotations_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        teams = await _teams(ui)
        rotations = await ui.api.get("/api/rotations", {"limit": 1000})
        return "rotations.html", {
            "title": "Rotations",
            "teams": teams,
            "managed_teams": [t for t in teams if t["permissions"]["can_write"]],
            "team_names": {t["id"]: t["name"] for t in teams},
            "rotations": rotations,
            "default_start": ui.fmt.input_value(_last_nine_oclock(ui.fmt.now.astimezone(ui.fmt.tz))),
            "timezone": ui.fmt.tz_name,
        }

    return await render(request, "rotations", build)


@get("/rotations/{rotation_id:int}", include_in_schema=False)
async def rotation_page(request: Request[Any, Any, Any], rotation_id: FromPath[int]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        rotation = await ui.api.get(f"/api/rotations/{rotation_id}")
        team = await ui.api.maybe(f"/api/teams/{rotation['team_id']}", default={})
        members = await ui.api.get(f"/api/rotations/{rotation_id}/members")
        overrides = await ui.api.get(f"/api/rotations/{rotation_id}/overrides")
        team_users = await ui.api.maybe(f"/api/teams/{rotation['team_id']}/users", default=[])
        eligible = await ui.api.maybe(f"/api/rotations/{rotation_id}/eligible-users", default=[])
        oncall = await ui.api.maybe(f"/api/rotations/{rotation_id}/oncall")
        now = ui.fmt.now.astimezone(_zone(rotation["timezone"]))
        start = parse_iso(rotation.get("start_at"))
        return "rotation.html", {
            "start_local": start.astimezone(_zone(rotation["timezone"])).strftime("%Y-%m-%dT%H:%M")
            if start
            else "",
            "title": rotation["name"],
            "rotation": rotation,
            "team": team,
            "members": members,
            "overrides": overrides,
            "team_users": [m for m in team_users if m.get("active", True)],
            "eligible": eligible,
            "oncall": oncall,
            "default_from": now.strftime("%Y-%m-%dT%H:%M"),
            "default_to": (now + dt.timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M"),
        }

    return await render(request, "rotations", build)


# routes and channels ----------------------------------------------------------------------------------


def _sources(request: Request[Any, Any, Any]) -> list[str]:
    registry = server_state(request).registry
    try:
        names = sorted(registry.intake_sources()) if registry is not None else []
    except Exception:  # a broken plugin must not take the page down
        names = []
    return [s for s in INTAKE_SOURCES if s in names or not names] + [
        s for s in names if s not in INTAKE_SOURCES
    ]


@get("/routes", include_in_schema=False)
async def routes_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        teams = await _teams(ui)
        return "routes.html", {
            "title": "Routes",
            "teams": teams,
            "managed_teams": [t for t in teams if t["permissions"]["can_write"]],
            "team_names": {t["id"]: t["name"] for t in teams},
            "routes": await ui.api.get("/api/routes", {"limit": 1000}),
            "rotations": await ui.api.get("/api/rotations", {"limit": 1000}),
            "channels": await ui.api.get("/api/channels", {"limit": 1000}),
            "categories": await ui.api.maybe("/api/categories", {"limit": 1000}, []),
            "sources": _sources(request),
            "samples": json.dumps(SAMPLE_PAYLOADS, separators=(",", ":")),
        }

    return await render(request, "routes", build)


@get("/routes/{route_id:int}", include_in_schema=False)
async def route_page(request: Request[Any, Any, Any], route_id: FromPath[int]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        route = await ui.api.get(f"/api/routes/{route_id}")
        channels = await ui.api.get("/api/channels", {"limit": 1000})
        rotation = (
            await ui.api.maybe(f"/api/rotations/{route['rotation_id']}") if route["rotation_id"] else None
        )
        rotations = await ui.api.maybe("/api/rotations", {"team_id": route["team_id"], "limit": 1000}, [])
        return "route.html", {
            "title": route["name"],
            "route": route,
            "rotation": rotation,
            "rotations": rotations,
            "categories": await ui.api.maybe("/api/categories", {"limit": 1000}, []),
            "severities": c.SEVERITIES,
            "channels": [ch for ch in channels if ch["team_id"] in (None, route["team_id"])],
            "curl": sample_curl(route["intake_url"], route["source"], "$RELAY_INTAKE_TOKEN"),
            "samples": json.dumps(SAMPLE_PAYLOADS, separators=(",", ":")),
        }

    return await render(request, "routes", build)


SEVERITY_KEY: Final = frozenset({"notify_on_severities"})


def config_extras(config: Mapping[str, Any], fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Settings of a channel that its edit form has no field for; they go back unchanged."""
    known = {f["name"] for f in fields} | SEVERITY_KEY
    return {k: v for k, v in config.items() if k not in known}


def channel_fields(kind: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Form fields of one channel type, from its config schema (S6.1)."""
    schema = kind.get("config_schema") or {}
    required = set(schema.get("required") or ())
    secret = set(kind.get("secret_fields") or ())
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        if name in SEVERITY_KEY:
            continue  # a check box per severity, shown for every type
        kind_name = prop.get("type") or "string"
        fields.append(
            {
                "name": name,
                "label": name.replace("_", " ").capitalize(),
                "type": kind_name,
                "required": name in required,
                "secret": name in secret or bool(prop.get("writeOnly")),
            }
        )
    return fields


@get("/channels", include_in_schema=False)
async def channels_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        teams = await _teams(ui)
        types = await ui.api.get("/api/channels/types")
        types = [t for t in types if t["type"] != "recording"] + [
            t for t in types if t["type"] == "recording"
        ]
        fields = {t["type"]: channel_fields(t) for t in types}
        channels = await ui.api.get("/api/channels", {"limit": 1000})
        return "channels.html", {
            "title": "Channels",
            "teams": teams,
            "managed_teams": [t for t in teams if t["permissions"]["can_write"]],
            "team_names": {t["id"]: t["name"] for t in teams},
            "channels": channels,
            "types": types,
            "fields": fields,
            "extras": {
                ch["id"]: config_extras(ch.get("config") or {}, fields.get(ch["channel_type"], []))
                for ch in channels
            },
            "severities": c.SEVERITIES,
            "type_labels": {t["type"]: t["label"] for t in types},
        }

    return await render(request, "channels", build)


# silences, categories --------------------------------------------------------------------------------


@get("/silences", include_in_schema=False)
async def silences_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        teams = await _teams(ui)
        now = ui.fmt.now
        return "silences.html", {
            "title": "Silences",
            "teams": teams,
            "managed_teams": [t for t in teams if t["permissions"]["can_write"]],
            "team_names": {t["id"]: t["name"] for t in teams},
            "silences": await ui.api.get("/api/silences", {"limit": 1000}),
            "default_from": ui.fmt.input_value(now),
            "default_to": ui.fmt.input_value(now + dt.timedelta(hours=2)),
        }

    return await render(request, "silences", build)


@get("/categories", include_in_schema=False)
async def categories_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        groups = await ui.api.get("/api/groups", {"limit": 1000})
        return "categories.html", {
            "title": "Categories",
            "categories": await ui.api.get("/api/categories", {"limit": 1000}),
            "groups": groups,
            "group_names": {g["id"]: g["name"] for g in groups},
        }

    return await render(request, "categories", build)


# groups, users, profile --------------------------------------------------------------------------------


@get("/groups", include_in_schema=False)
async def groups_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        return "groups.html", {"title": "Groups", "groups": await ui.api.get("/api/groups", {"limit": 1000})}

    return await render(request, "groups", build)


@get("/groups/{group_id:int}", include_in_schema=False)
async def group_page(request: Request[Any, Any, Any], group_id: FromPath[int]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        group = await ui.api.get(f"/api/groups/{group_id}")
        members = await ui.api.get(f"/api/groups/{group_id}/users")
        users = await ui.api.maybe("/api/users", {"limit": 1000}, [])
        taken = {m["user_id"] for m in members}
        teams = [t for t in await _teams(ui) if t["group_id"] == group_id]
        return "group.html", {
            "title": group["name"],
            "group": group,
            "members": members,
            "teams": teams,
            "candidates": [u for u in users if u["id"] not in taken],
        }

    return await render(request, "groups", build)


@get("/admin/users", include_in_schema=False)
async def users_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        return "users.html", {
            "title": "Users",
            "users": await ui.api.get("/api/admin/users", {"limit": 1000}),
            "groups": await ui.api.get("/api/groups", {"limit": 1000}),
        }

    return await render(request, "users", build)


SCOPE_CHOICES: Final = (
    "alerts:read",
    "alerts:write",
    "resources:read",
    "resources:write",
    "profile:read",
    "profile:write",
    "audit:read",
    "*",
)


@get("/profile", include_in_schema=False)
async def profile_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        return "profile.html", {
            "title": "Profile",
            "profile": await ui.api.get("/api/profile"),
            "tokens": await ui.api.get("/api/profile/tokens"),
            "scopes": SCOPE_CHOICES,
            "subscriptions": await ui.api.maybe("/api/profile/subscriptions"),
        }

    return await render(request, "profile", build)


# categories: rules, role groups, subscriptions (S8) -----------------------------------------------

SUB_CHANNEL_EXCLUDED: Final = frozenset({"email", "sms", "voice_call"})


async def _editable_groups(ui: Ui) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    groups: list[dict[str, Any]] = await ui.api.get("/api/groups", {"limit": 1000})
    editable = [g for g in groups if ui.me.get("is_admin") or g.get("role") == c.GROUP_EDITOR]
    return groups, editable


@get("/subscriptions", include_in_schema=False)
async def subscriptions_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        groups, editable = await _editable_groups(ui)
        channels = await ui.api.get("/api/channels", {"limit": 1000})
        return "subscriptions.html", {
            "title": "Subscriptions",
            "subscriptions": await ui.api.get("/api/subscriptions", {"limit": 1000}),
            "role_groups": await ui.api.get("/api/role-groups", {"limit": 1000}),
            "categories": await ui.api.get("/api/categories", {"limit": 1000}),
            "groups": groups,
            "editable": editable,
            "group_names": {g["id"]: g["name"] for g in groups},
            "channels": channels,
            "channel_names": {ch["id"]: ch["name"] for ch in channels},
            "destinations": [ch for ch in channels if ch["channel_type"] not in SUB_CHANNEL_EXCLUDED],
            "severities": c.SEVERITIES,
            "events": ("created", "acknowledged", "resolved", "reopened", "escalated"),
        }

    return await render(request, "subscriptions", build)


@get("/role-groups", include_in_schema=False)
async def role_groups_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        groups, editable = await _editable_groups(ui)
        members: dict[int, list[dict[str, Any]]] = {}
        for group in groups:
            members[group["id"]] = await ui.api.maybe(f"/api/groups/{group['id']}/users", default=[])
        return "role_groups.html", {
            "title": "Role groups",
            "role_groups": await ui.api.get("/api/role-groups", {"limit": 1000}),
            "groups": groups,
            "editable": editable,
            "group_names": {g["id"]: g["name"] for g in groups},
            "group_members": members,
        }

    return await render(request, "subscriptions", build)


@get("/category-rules", include_in_schema=False)
async def category_rules_page(request: Request[Any, Any, Any]) -> Response[Any]:
    async def build(ui: Ui) -> Built:
        groups, editable = await _editable_groups(ui)
        return "category_rules.html", {
            "title": "Category rules",
            "rules": await ui.api.get("/api/category-rules", {"limit": 1000}),
            "categories": await ui.api.get("/api/categories", {"limit": 1000}),
            "groups": groups,
            "editable": editable,
            "group_names": {g["id"]: g["name"] for g in groups},
        }

    return await render(request, "categories", build)


PAGES: Final = [
    index,
    login_page,
    alerts_page,
    alert_page,
    calendar_page,
    teams_page,
    team_page,
    rotations_page,
    rotation_page,
    routes_page,
    route_page,
    channels_page,
    silences_page,
    categories_page,
    groups_page,
    group_page,
    users_page,
    profile_page,
    subscriptions_page,
    role_groups_page,
    category_rules_page,
]


def _last_nine_oclock(now: dt.datetime) -> dt.datetime:
    """The latest 09:00 at or before ``now``: a new rotation's default start, so that somebody is on
    call as soon as it has members (today's 09:00 is still in the future before 09:00)."""
    nine = now.replace(hour=9, minute=0, second=0, microsecond=0)
    return nine if nine <= now else nine - dt.timedelta(days=1)
