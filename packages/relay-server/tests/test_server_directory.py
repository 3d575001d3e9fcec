"""Groups, memberships, users and teams with their RBAC rules (SPEC S1.2, S9.3, S9.6)."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from .conftest import World

# --- groups -------------------------------------------------------------------------------------


async def test_list_groups_shows_own_groups(world: World, client: AsyncTestClient[Any]) -> None:
    """A member sees only their groups, with their role and permissions; an admin sees all."""
    mine = (await client.get("/api/groups", headers=world.auth("viewer"))).json()
    assert [(g["slug"], g["role"]) for g in mine] == [("ops", "viewer")]
    assert mine[0]["permissions"]["can_write"] is False
    everything = (await client.get("/api/groups", headers=world.auth("admin"))).json()
    assert {g["slug"] for g in everything} == {"ops", "other"}


async def test_create_group_admin_only(world: World, client: AsyncTestClient[Any]) -> None:
    """Admins create groups (201); an editor gets 403; a bad slug is 400; a duplicate slug 409."""
    body = {"slug": "new-group", "name": "New group"}
    assert (await client.post("/api/groups", json=body, headers=world.auth("editor"))).status_code == 403
    created = await client.post("/api/groups", json=body, headers=world.auth("admin"))
    assert created.status_code == 201
    assert created.json()["slug"] == "new-group"
    bad = await client.post(
        "/api/groups", json={"slug": "Bad Slug", "name": "x y"}, headers=world.auth("admin")
    )
    assert bad.status_code == 400
    assert (await client.post("/api/groups", json=body, headers=world.auth("admin"))).status_code == 409


async def test_group_detail_update_delete(world: World, client: AsyncTestClient[Any]) -> None:
    """Outsiders get 404 for a group; a viewer cannot update (403); admin updates and deletes."""
    gid = world.ids["group"]
    assert (await client.get(f"/api/groups/{gid}", headers=world.auth("outsider"))).status_code == 404
    assert (await client.get(f"/api/groups/{gid}", headers=world.auth("viewer"))).json()[
        "name"
    ] == "Operations"
    assert (
        await client.put(f"/api/groups/{gid}", json={"name": "Ops"}, headers=world.auth("viewer"))
    ).status_code == 403
    updated = await client.put(f"/api/groups/{gid}", json={"name": "Ops"}, headers=world.auth("admin"))
    assert updated.json()["name"] == "Ops"
    assert (
        await client.put(f"/api/groups/{gid}", json={"colour": "red"}, headers=world.auth("admin"))
    ).status_code == 400
    response = await client.delete(f"/api/groups/{world.ids['other_group']}", headers=world.auth("admin"))
    assert response.json() == {"deleted": True, "id": world.ids["other_group"]}
    assert (
        await client.get(f"/api/groups/{world.ids['other_group']}", headers=world.auth("admin"))
    ).status_code == 404


async def test_group_memberships(world: World, client: AsyncTestClient[Any]) -> None:
    """Members are listed; adding an existing user is admin-only; user_admin may disable a membership."""
    gid = world.ids["group"]
    listed = (await client.get(f"/api/groups/{gid}/users", headers=world.auth("viewer"))).json()
    assert {m["username"] for m in listed} >= {"manager", "viewer", "editor"}
    add = {"user_id": world.ids["outsider"], "role": "viewer"}
    assert (
        await client.post(f"/api/groups/{gid}/users", json=add, headers=world.auth("useradmin"))
    ).status_code == 403
    bad = await client.post(
        f"/api/groups/{gid}/users", json={"user_id": 1, "role": "owner"}, headers=world.auth("admin")
    )
    assert bad.status_code == 400
    created = await client.post(f"/api/groups/{gid}/users", json=add, headers=world.auth("admin"))
    assert created.status_code == 201
    membership_id = created.json()["id"]
    disabled = await client.post(
        f"/api/groups/users/{membership_id}/disable", headers=world.auth("useradmin")
    )
    assert disabled.status_code == 200
    assert disabled.json()["active"] is False
    denied = await client.put(
        f"/api/groups/users/{membership_id}", json={"role": "editor"}, headers=world.auth("useradmin")
    )
    assert denied.status_code == 403
    changed = await client.put(
        f"/api/groups/users/{membership_id}", json={"role": "editor"}, headers=world.auth("admin")
    )
    assert changed.json()["role"] == "editor"
    removed = await client.delete(f"/api/groups/users/{membership_id}", headers=world.auth("admin"))
    assert removed.json() == {"deleted": True, "id": membership_id}


async def test_removing_group_membership_deactivates_team_membership(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """Disabling a group membership deactivates the user's team memberships in that group (S1.9 #8)."""
    (membership,) = await world.find("group_memberships", user_id=world.ids["responder"])
    await client.post(f"/api/groups/users/{membership.id}/disable", headers=world.auth("admin"))
    (team_membership,) = await world.find("team_memberships", user_id=world.ids["responder"])
    assert team_membership.active is False


# --- users --------------------------------------------------------------------------------------


async def test_user_directory_masks_phones(world: World, client: AsyncTestClient[Any]) -> None:
    """GET /api/users lists users sharing a group, masking others' phone numbers for non-admins."""
    users = {u["username"]: u for u in (await client.get("/api/users", headers=world.auth("viewer"))).json()}
    assert "outsider" not in users
    assert users["manager"]["phone"] == "***1111"
    assert users["manager"]["email"] is None
    admin_view = {
        u["username"]: u for u in (await client.get("/api/users", headers=world.auth("admin"))).json()
    }
    assert admin_view["manager"]["phone"] == "+15550001111"


async def test_admin_user_crud(world: World, client: AsyncTestClient[Any]) -> None:
    """Admins create, read, update and delete users; non-admins get 403; invalid input is 400."""
    body = {"username": "newbie", "email": "newbie@example.com", "password": "long-enough-password"}
    assert (await client.post("/api/admin/users", json=body, headers=world.auth("viewer"))).status_code == 403
    bad = await client.post("/api/admin/users", json={"username": "x"}, headers=world.auth("admin"))
    assert bad.status_code == 400
    created = await client.post("/api/admin/users", json=body, headers=world.auth("admin"))
    assert created.status_code == 201
    user_id = created.json()["id"]
    assert "password" not in created.json()
    assert "password_hash" not in created.json()
    assert (await client.post("/api/admin/users", json=body, headers=world.auth("admin"))).status_code == 409
    assert (await client.get(f"/api/admin/users/{user_id}", headers=world.auth("admin"))).json()[
        "username"
    ] == "newbie"
    updated = await client.put(
        f"/api/admin/users/{user_id}", json={"phone": "+15559990000"}, headers=world.auth("admin")
    )
    assert updated.json()["phone"] == "+15559990000"
    assert (
        await client.delete(f"/api/admin/users/{user_id}", headers=world.auth("admin"))
    ).status_code == 200
    assert (await client.get(f"/api/admin/users/{user_id}", headers=world.auth("admin"))).status_code == 404


async def test_user_admin_creates_users_in_own_group_only(world: World, client: AsyncTestClient[Any]) -> None:
    """A group user_admin creates users linked to their group but not admins or in other groups."""
    gid = world.ids["group"]
    ok = await client.post(
        "/api/admin/users", json={"username": "hire", "group_id": gid}, headers=world.auth("useradmin")
    )
    assert ok.status_code == 201
    memberships = await world.find("group_memberships", user_id=ok.json()["id"])
    assert [(m.group_id, m.role) for m in memberships] == [(gid, "viewer")]
    admin = await client.post(
        "/api/admin/users",
        json={"username": "boss", "group_id": gid, "is_admin": True},
        headers=world.auth("useradmin"),
    )
    assert admin.status_code == 403
    elsewhere = await client.post(
        "/api/admin/users",
        json={"username": "spy", "group_id": world.ids["other_group"]},
        headers=world.auth("useradmin"),
    )
    assert elsewhere.status_code == 403


async def test_last_admin_and_self_protection(world: World, client: AsyncTestClient[Any]) -> None:
    """An admin cannot disable or delete themself, and the last active admin cannot be demoted."""
    me = world.ids["admin"]
    assert (
        await client.put(f"/api/admin/users/{me}", json={"active": False}, headers=world.auth("admin"))
    ).status_code == 409
    assert (await client.delete(f"/api/admin/users/{me}", headers=world.auth("admin"))).status_code == 409


# --- teams --------------------------------------------------------------------------------------


async def test_list_and_get_teams(world: World, client: AsyncTestClient[Any]) -> None:
    """Teams are visible to their group's members, with permissions; others get 404."""
    teams = (await client.get("/api/teams", headers=world.auth("responder"))).json()
    assert [(t["slug"], t["role"]) for t in teams] == [("infra", "responder")]
    assert teams[0]["permissions"] == {"can_read": True, "can_write": False, "can_respond": True}
    assert (
        await client.get(f"/api/teams/{world.ids['team']}", headers=world.auth("outsider"))
    ).status_code == 404


async def test_editor_creates_team_and_becomes_manager(world: World, client: AsyncTestClient[Any]) -> None:
    """A group editor creates a team and manages it; a viewer gets 403; a bad body 400."""
    body = {"group_id": world.ids["group"], "slug": "payments", "name": "Payments"}
    assert (await client.post("/api/teams", json=body, headers=world.auth("viewer"))).status_code == 403
    bad = await client.post(
        "/api/teams", json={**body, "escalation_after_reminders": 0}, headers=world.auth("editor")
    )
    assert bad.status_code == 400
    created = await client.post("/api/teams", json=body, headers=world.auth("editor"))
    assert created.status_code == 201
    assert created.json()["role"] == "manager"
    assert created.json()["permissions"]["can_write"] is True
    assert (await client.post("/api/teams", json=body, headers=world.auth("editor"))).status_code == 409


async def test_update_and_delete_team(world: World, client: AsyncTestClient[Any]) -> None:
    """Team managers update teams; responders get 403; deletes answer {deleted, id}."""
    tid = world.ids["team"]
    assert (
        await client.put(f"/api/teams/{tid}", json={"name": "Infra"}, headers=world.auth("responder"))
    ).status_code == 403
    updated = await client.put(
        f"/api/teams/{tid}", json={"escalation_enabled": False}, headers=world.auth("manager")
    )
    assert updated.json()["escalation_enabled"] is False
    assert (await client.delete(f"/api/teams/{tid}", headers=world.auth("manager"))).json() == {
        "deleted": True,
        "id": tid,
    }


async def test_team_users(world: World, client: AsyncTestClient[Any]) -> None:
    """Managers add group members to the team; non-group users are 400; roles change and members leave."""
    tid = world.ids["team"]
    listed = (await client.get(f"/api/teams/{tid}/users", headers=world.auth("viewer"))).json()
    assert {m["username"] for m in listed} == {"manager", "responder", "viewer"}
    outsider = await client.post(
        f"/api/teams/{tid}/users", json={"user_id": world.ids["outsider"]}, headers=world.auth("manager")
    )
    assert outsider.status_code == 400
    denied = await client.post(
        f"/api/teams/{tid}/users", json={"user_id": world.ids["editor"]}, headers=world.auth("responder")
    )
    assert denied.status_code == 403
    added = await client.post(
        f"/api/teams/{tid}/users",
        json={"user_id": world.ids["editor"], "role": "responder"},
        headers=world.auth("manager"),
    )
    assert added.status_code == 201
    mid = added.json()["id"]
    changed = await client.put(
        f"/api/teams/users/{mid}", json={"role": "manager"}, headers=world.auth("manager")
    )
    assert changed.json()["role"] == "manager"
    assert (await client.delete(f"/api/teams/users/{mid}", headers=world.auth("manager"))).status_code == 200


async def test_audit_rows_are_written(world: World, client: AsyncTestClient[Any]) -> None:
    """Each successful write leaves an audit row naming the actor."""
    await client.put(
        f"/api/teams/{world.ids['team']}", json={"description": "core"}, headers=world.auth("manager")
    )
    rows = [r for r in await world.find("audit") if r.action == "team.update"]
    assert rows
    assert rows[0].user_id == world.ids["manager"]


async def test_audit_log_endpoint_is_admin_only(world: World, client: AsyncTestClient[Any]) -> None:
    """GET /api/admin/audit-logs lists rows newest first for admins and is 403 for others."""
    await client.put(
        f"/api/teams/{world.ids['team']}", json={"description": "core"}, headers=world.auth("manager")
    )
    assert (await client.get("/api/admin/audit-logs", headers=world.auth("manager"))).status_code == 403
    rows = (await client.get("/api/admin/audit-logs?action=team.update", headers=world.auth("admin"))).json()
    assert [r["action"] for r in rows] == ["team.update"]
    bad = await client.get("/api/admin/audit-logs?limit=0", headers=world.auth("admin"))
    assert bad.status_code == 400


async def test_plugins_endpoint_is_admin_only(world: World, client: AsyncTestClient[Any]) -> None:
    """GET /api/plugins shows the built-in plugin and the names it provides to admins; others
    and API tokens get 403."""
    plugins = (await client.get("/api/plugins", headers=world.auth("admin"))).json()
    builtin = next(p for p in plugins if p["name"] == "builtin")
    assert builtin["status"] == "loaded"
    assert {"channel:webhook", "intake_source:alertmanager"} <= set(builtin["provides"])
    assert (await client.get("/api/plugins", headers=world.auth("editor"))).status_code == 403
    assert (await client.get("/api/plugins", headers=world.bearer("all"))).status_code == 403


async def test_user_directory_hides_disabled_users_unless_asked(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """GET /api/users omits disabled users; ``include_inactive=true`` lists them too."""
    disabled = await client.put(
        f"/api/admin/users/{world.ids['responder']}", json={"active": False}, headers=world.auth("admin")
    )
    assert disabled.status_code == 200, disabled.text

    async def names(**params: Any) -> set[str]:
        response = await client.get("/api/users", params=params, headers=world.auth("viewer"))
        assert response.status_code == 200, response.text
        return {u["username"] for u in response.json()}

    assert "responder" not in await names()
    assert "manager" in await names()
    shown = await names(include_inactive="true")
    assert {"responder", "manager"} <= shown
    assert "outsider" not in shown
    bad = await client.get("/api/users", params={"include_inactive": "maybe"}, headers=world.auth("viewer"))
    assert bad.status_code == 400
