"""Channels and channel types (SPEC S6.1, S9.6).

Secret config fields (marked ``metadata={"secret": True}`` on the type's ``Config`` attrs class,
or named like a token, secret, password or webhook URL) are write-only: answers show
``__RELAY_SECRET__``, and sending that placeholder back on update keeps the stored value.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated, Any, Final

import attrs
import cattrs
import cattrs.preconf.json
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from relay_core.domain.model import Channel, Team
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import Access, load_access, require
from relay_server.controllers._support import (
    LEGACY_SECRET_PLACEHOLDER,
    SECRET_PLACEHOLDER,
    Caller,
    Limit,
    Offset,
    ServerState,
    audit,
    caller_session,
    check_name,
    checked_changes,
    page,
    server_state,
    soft_delete,
)
from relay_server.controllers.voice import validate_callback_channel_config
from relay_server.errors import ApiError, not_found, validation_error
from relay_server.schemas import ChannelCreate, ChannelUpdate

_SECRET_PARTS: Final = ("secret", "token", "password", "webhook_url", "api_key", "apikey", "private_key")
COMMON_KEYS: Final = frozenset({"notify_on_severities", "send_status_updates", "template"})
CALLBACK_TYPES: Final = frozenset({"voice_call", "sms"})
PLACEHOLDERS: Final = frozenset({SECRET_PLACEHOLDER, LEGACY_SECRET_PLACEHOLDER})


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_PARTS)


def mask_secrets(config: Mapping[str, Any], marked: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A copy of ``config`` with secret values replaced by the placeholder (recursively)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out[key] = mask_secrets(value)
        elif (key in marked or _secret_name(str(key))) and value not in (None, ""):
            out[key] = SECRET_PLACEHOLDER
        else:
            out[key] = value
    return out


def _keep_secrets(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """Replace placeholders in ``new`` with the stored values from ``old``."""
    out: dict[str, Any] = {}
    for key, value in new.items():
        if isinstance(value, Mapping):
            previous = old.get(key)
            out[key] = _keep_secrets(value, previous if isinstance(previous, Mapping) else {})
        elif isinstance(value, str) and value in PLACEHOLDERS:
            if key in old:
                out[key] = old[key]
        else:
            out[key] = value
    return out


@attrs.frozen
class ChannelType:
    name: str
    label: str
    config_class: type[Any] | None
    capabilities: Any
    source: str

    @property
    def secret_fields(self) -> frozenset[str]:
        if self.config_class is None or not attrs.has(self.config_class):
            return frozenset()
        return frozenset(
            f.name
            for f in attrs.fields(self.config_class)
            if f.metadata.get("secret") is True or _secret_name(f.name)
        )


def channel_types(st: ServerState) -> dict[str, ChannelType]:
    """Channel types from the plugin registry and the core's senders (``voice_call``, test doubles)."""
    out: dict[str, ChannelType] = {}
    registry = st.registry
    if registry is not None:
        for name, cls in registry.channels().items():
            try:
                plugin = registry.provided_by("channel", name)
            except KeyError:
                plugin = "builtin"
            out[name] = ChannelType(
                name=name,
                label=str(getattr(cls, "label", name)),
                config_class=getattr(cls, "Config", None),
                capabilities=getattr(cls, "capabilities", None),
                source="builtin" if plugin == "builtin" else plugin,
            )
    for name, sender in st.relay.ctx.senders.items():
        if name not in out:
            out[name] = ChannelType(
                name=name,
                label=str(getattr(sender, "label", name)),
                config_class=getattr(sender, "Config", None),
                capabilities=getattr(sender, "capabilities", None),
                source="builtin",
            )
    return out


_JSON_TYPES: Final = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_schema(config_class: type[Any] | None, secret: frozenset[str]) -> dict[str, Any]:
    if config_class is None or not attrs.has(config_class):
        return {"type": "object"}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(config_class):
        kind = _JSON_TYPES.get(field.type) if isinstance(field.type, type) else None
        text = str(field.type)
        if kind is None:
            kind = next(
                (
                    v
                    for k, v in (
                        ("bool", "boolean"),
                        ("int", "integer"),
                        ("float", "number"),
                        ("str", "string"),
                    )
                    if text.startswith(k)
                ),
                None,
            )
        if "tuple" in text or "list" in text or "Sequence" in text:
            kind = "array"
        elif "Mapping" in text or "dict" in text:
            kind = "object"
        prop: dict[str, Any] = {"type": kind} if kind else {}
        if field.name in secret:
            prop["writeOnly"] = True
        properties[field.name] = prop
        if field.default is attrs.NOTHING:
            required.append(field.name)
    return {"type": "object", "properties": properties, "required": required}


def validate_config(kind: ChannelType, config: Mapping[str, Any]) -> None:
    """Structure ``config`` into the type's Config class; 400 with one detail per problem."""
    if kind.config_class is None or not attrs.has(kind.config_class):
        return
    names = {f.name for f in attrs.fields(kind.config_class)}
    payload = {k: v for k, v in config.items() if not (k in COMMON_KEYS and k not in names)}
    converter = cattrs.preconf.json.make_converter(forbid_extra_keys=True)
    try:
        converter.structure(payload, kind.config_class)
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            messages = cattrs.transform_error(exc, path="$.config")
        else:
            messages = [f"$.config: {type(exc).__name__}"]
        details = []
        for message in messages:
            text, _, loc = message.rpartition(" @ ")
            details.append({"loc": loc or "$.config", "message": text or message})
        raise validation_error("invalid channel config", details) from None


def serialize_channel(
    channel: Channel, kind: ChannelType | None, access: Access, team: Team | None
) -> dict[str, Any]:
    marked = kind.secret_fields if kind else frozenset()
    can_write = access.can_manage(team) if team is not None else access.is_group_editor(channel.group_id)
    return {
        "id": channel.id,
        "group_id": channel.group_id,
        "team_id": channel.team_id,
        "name": channel.name,
        "channel_type": channel.channel_type,
        "config": mask_secrets(channel.config, marked),
        "enabled": channel.enabled,
        "has_callback_secret": bool(channel.callback_secret),
        "permissions": {"can_read": True, "can_write": can_write, "can_respond": False},
    }


async def _channel(
    uow: UnitOfWork, access: Access, channel_id: int, *, write: bool = False
) -> tuple[Channel, Team | None]:
    channel = await uow.channels.get(channel_id)
    if channel is None:
        raise not_found("channel")
    team = await uow.teams.get(channel.team_id) if channel.team_id is not None else None
    readable = access.can_read_team(team) if team is not None else access.can_read_group(channel.group_id)
    if not readable:
        raise not_found("channel")
    if write:
        allowed = access.can_manage(team) if team is not None else access.is_group_editor(channel.group_id)
        require(allowed, "Manager rights on the team (editor rights for group channels) are required")
    return channel, team


class ChannelsController(Controller):
    path = "/api/channels"
    tags = ("channels",)

    @get("/types", operation_id="ListChannelTypes")
    async def list_types(self, request: Request[Any, Any, Any], principal: Caller) -> list[dict[str, Any]]:
        """Every channel type Relay can send through, with its config schema."""
        st = server_state(request)
        out = []
        for kind in channel_types(st).values():
            caps = kind.capabilities
            secret = kind.secret_fields
            out.append(
                {
                    "type": kind.name,
                    "label": kind.label,
                    "config_schema": _json_schema(kind.config_class, secret),
                    "secret_fields": sorted(secret),
                    "supports_update": bool(getattr(caps, "supports_update", False)),
                    "supports_actions": bool(getattr(caps, "supports_actions", False)),
                    "person_addressed": bool(getattr(caps, "person_addressed", False)),
                    "source": kind.source,
                }
            )
        return out

    @get("/", operation_id="ListChannels")
    async def list_channels(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Channels of visible teams and groups."""
        st = server_state(request)
        kinds = channel_types(st)
        async with st.uow() as uow:
            access = await load_access(uow, principal.user)
            out = []
            for channel in await uow.channels.find():
                if team_id is not None and channel.team_id != team_id:
                    continue
                team = await uow.teams.get(channel.team_id) if channel.team_id is not None else None
                readable = access.can_read_team(team) if team else access.can_read_group(channel.group_id)
                if readable and (channel.team_id is None or team is not None):
                    out.append(serialize_channel(channel, kinds.get(channel.channel_type), access, team))
        return page(out, limit, offset)

    @post("/", operation_id="CreateChannel", status_code=201)
    async def create_channel(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[ChannelCreate]
    ) -> dict[str, Any]:
        """Create a team channel (team manager) or a group-level channel (group editor)."""
        st = server_state(request)
        name = check_name(data.name)
        kinds = channel_types(st)
        kind = kinds.get(data.channel_type)
        if kind is None:
            raise validation_error(
                "unknown channel type",
                [{"loc": "$.channel_type", "message": f"unknown channel type {data.channel_type!r}"}],
            )
        if data.team_id is None and data.group_id is None:
            raise validation_error(
                "team_id or group_id is required",
                [{"loc": "$.team_id", "message": "team_id or group_id is required"}],
            )
        validate_config(kind, data.config)
        validate_callback_channel_config(st, data.channel_type, data.config)  # S7.3 provider check
        async with st.uow() as uow:
            access = await load_access(uow, principal.user)
            team: Team | None = None
            if data.team_id is not None:
                team = await uow.teams.get(data.team_id)
                if team is None or not access.can_read_team(team):
                    raise not_found("team")
                if data.group_id is not None and data.group_id != team.group_id:
                    raise validation_error(
                        "group_id does not match the team",
                        [{"loc": "$.group_id", "message": "must be the team's group"}],
                    )
                require(access.can_manage(team), "Manager rights on the team are required")
                group_id = team.group_id
            else:
                assert data.group_id is not None
                group = await uow.groups.get(data.group_id)
                if group is None or not access.can_read_group(group.id):
                    raise not_found("group")
                require(access.is_group_editor(group.id), "Editor rights on the group are required")
                group_id = group.id
            for other in await uow.channels.find(group_id=group_id, team_id=data.team_id):
                if other.name == name:
                    raise ApiError(409, "conflict", "a channel with this name already exists")
            channel = await uow.channels.add(
                Channel(
                    group_id=group_id,
                    team_id=data.team_id,
                    name=name,
                    channel_type=data.channel_type,
                    config=dict(data.config),
                    enabled=data.enabled,
                    callback_secret=secrets.token_urlsafe(32)
                    if data.channel_type in CALLBACK_TYPES
                    else None,
                )
            )
            await audit(
                uow,
                st,
                principal,
                "channel.create",
                "channel",
                channel.id,
                group_id=group_id,
                team_id=data.team_id,
            )
            await uow.commit()
        return serialize_channel(channel, kind, access, team)

    @get("/{channel_id:int}", operation_id="GetChannel")
    async def get_channel(
        self, request: Request[Any, Any, Any], principal: Caller, channel_id: FromPath[int]
    ) -> dict[str, Any]:
        """One channel (secrets masked)."""
        async with caller_session(request, principal) as (st, uow, access):
            channel, team = await _channel(uow, access, channel_id)
        return serialize_channel(channel, channel_types(st).get(channel.channel_type), access, team)

    @put("/{channel_id:int}", operation_id="UpdateChannel")
    async def update_channel(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        channel_id: FromPath[int],
        data: JSONBody[ChannelUpdate],
    ) -> dict[str, Any]:
        """Update a channel; secret placeholders keep the stored values."""
        values = checked_changes(data)
        async with caller_session(request, principal) as (st, uow, access):
            channel, team = await _channel(uow, access, channel_id, write=True)
            kind = channel_types(st).get(channel.channel_type)
            if "config" in values:
                values["config"] = _keep_secrets(values["config"], channel.config)
                if kind is not None:
                    validate_config(kind, values["config"])
                validate_callback_channel_config(st, channel.channel_type, values["config"])
            channel = await uow.channels.update(attrs.evolve(channel, **values))
            await audit(
                uow,
                st,
                principal,
                "channel.update",
                "channel",
                channel.id,
                group_id=channel.group_id,
                team_id=channel.team_id,
                data={"fields": sorted(values)},
            )
            await uow.commit()
        return serialize_channel(channel, kind, access, team)

    @delete("/{channel_id:int}", operation_id="DeleteChannel", status_code=200)
    async def delete_channel(
        self, request: Request[Any, Any, Any], principal: Caller, channel_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a channel and detach it from routes."""
        async with caller_session(request, principal) as (st, uow, access):
            channel, _team = await _channel(uow, access, channel_id, write=True)
            for route in await uow.routes.find():
                if channel.id in route.channel_ids:
                    await uow.routes.update(
                        attrs.evolve(
                            route, channel_ids=tuple(c for c in route.channel_ids if c != channel.id)
                        )
                    )
            return await soft_delete(
                uow,
                st,
                principal,
                uow.channels,
                channel,
                "channel",
                group_id=channel.group_id,
                team_id=channel.team_id,
            )
