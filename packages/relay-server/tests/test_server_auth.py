"""Login, sessions, password changes, personal API tokens and scopes (SPEC S9.2, S9.4, S13.5)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import attrs
from litestar.testing import AsyncTestClient

from relay_adapters.settings import AuthSettings, RelaySettings

from .conftest import PASSWORD, World, build_world


async def login(client: AsyncTestClient[Any], username: str, password: str = PASSWORD) -> Any:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


async def test_login_returns_token_user_and_cookie(world: World, client: AsyncTestClient[Any]) -> None:
    """A correct login answers the token, its expiry and the user, and sets an HttpOnly cookie."""
    response = await login(client, "responder")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == "responder"
    assert body["expires_at"].endswith("Z")
    assert "password_hash" not in body["user"]
    set_cookie = response.headers.get_list("set-cookie")
    session = next(c for c in set_cookie if c.startswith("relay_jwt="))
    assert "HttpOnly" in session
    assert "SameSite=lax" in session or "SameSite=Lax" in session
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "responder"
    assert {"team_id": world.ids["team"], "role": "responder"} in me.json()["teams"]


def adopt_cookies(client: AsyncTestClient[Any], body: dict[str, Any]) -> None:
    # The fixture's public_base_url is https, so the cookies are Secure and the http test client
    # would not send them back by itself.
    client.cookies.set("relay_jwt", body["token"])
    client.cookies.set("relay_csrf", body["csrf_token"])


async def test_session_cookie_is_secure_on_https(client: AsyncTestClient[Any]) -> None:
    """With an https public_base_url the session cookie is Secure."""
    response = await login(client, "viewer")
    session = next(c for c in response.headers.get_list("set-cookie") if c.startswith("relay_jwt="))
    assert "Secure" in session


async def test_cookie_session_authenticates_reads(client: AsyncTestClient[Any]) -> None:
    """After login, the session cookie alone authenticates GET requests."""
    adopt_cookies(client, (await login(client, "viewer")).json())
    response = await client.get("/api/auth/me")
    assert response.status_code == 200
    assert response.json()["username"] == "viewer"


async def test_cookie_session_needs_csrf_for_writes(client: AsyncTestClient[Any]) -> None:
    """A cookie-authenticated POST without X-CSRF-Token is 403 csrf_failed; with it, it passes."""
    body = (await login(client, "viewer")).json()
    adopt_cookies(client, body)
    denied = await client.post("/api/profile/tokens", json={"name": "t", "scopes": ["alerts:read"]})
    assert denied.status_code == 403
    assert denied.json()["error"] == "csrf_failed"
    allowed = await client.post(
        "/api/profile/tokens",
        json={"name": "t", "scopes": ["alerts:read"]},
        headers={"X-CSRF-Token": body["csrf_token"]},
    )
    assert allowed.status_code == 201


async def test_wrong_password_and_unknown_user_look_the_same(client: AsyncTestClient[Any]) -> None:
    """Bad credentials are 401 invalid_credentials with one message for both cases."""
    wrong = await login(client, "responder", "not-the-password")
    unknown = await login(client, "nobody", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "invalid_credentials"


async def test_inactive_user_cannot_log_in(world: World, client: AsyncTestClient[Any]) -> None:
    """A disabled user gets the same 401 as a wrong password."""
    async with world.relay.uow_factory() as uow:
        user = await uow.users.get(world.ids["viewer"])
        await uow.users.update(attrs.evolve(user, active=False))
        await uow.commit()
    assert (await login(client, "viewer")).status_code == 401


async def test_login_validation_error(client: AsyncTestClient[Any]) -> None:
    """A login body without a password is 400 validation_error."""
    response = await client.post("/api/auth/login", json={"username": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


async def test_login_is_throttled_per_ip() -> None:
    """After the per-IP failure limit, even a correct password gets 429 with Retry-After."""
    world = await build_world(settings=RelaySettings(auth=AuthSettings(login_ip_max_failures=3)))
    async with AsyncTestClient(app=world.app) as client:
        for _ in range(3):
            assert (await login(client, "responder", "wrong-password")).status_code == 401
        blocked = await login(client, "responder")
        assert blocked.status_code == 429
        assert blocked.json()["error"] == "too_many_attempts"
        assert int(blocked.headers["retry-after"]) == blocked.json()["retry_after"] == 300
        world.clock.advance(301)
        assert (await login(client, "responder")).status_code == 200


async def test_logout_revokes_the_session(world: World, client: AsyncTestClient[Any]) -> None:
    """After logout, the same JWT is refused."""
    token = (await login(client, "responder")).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 200
    response = await client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401


async def test_me_requires_authentication(client: AsyncTestClient[Any]) -> None:
    """GET /api/auth/me without credentials is 401 unauthorized."""
    response = await client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_expired_session_is_refused(world: World, client: AsyncTestClient[Any]) -> None:
    """A JWT past auth.jwt_expire_minutes is refused."""
    headers = world.auth("responder")
    world.clock.advance(dt.timedelta(minutes=1441))
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401


async def test_change_password_invalidates_older_sessions(world: World, client: AsyncTestClient[Any]) -> None:
    """Changing the password answers a new session and makes older sessions invalid."""
    old = world.auth("responder")
    response = await client.post(
        "/api/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "a-brand-new-password"},
        headers=old,
    )
    assert response.status_code == 200
    assert (await client.get("/api/auth/me", headers=old)).status_code == 401
    new = {"Authorization": f"Bearer {response.json()['token']}"}
    assert (await client.get("/api/auth/me", headers=new)).status_code == 200
    assert (await login(client, "responder", "a-brand-new-password")).status_code == 200


async def test_change_password_rejects_wrong_current(world: World, client: AsyncTestClient[Any]) -> None:
    """A wrong current password is 401 and changes nothing."""
    response = await client.post(
        "/api/auth/change-password",
        json={"current_password": "nope-nope-nope", "new_password": "a-brand-new-password"},
        headers=world.auth("responder"),
    )
    assert response.status_code == 401
    assert (await login(client, "responder")).status_code == 200


async def test_change_password_validates_length(world: World, client: AsyncTestClient[Any]) -> None:
    """A new password shorter than 10 characters is 400."""
    response = await client.post(
        "/api/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=world.auth("responder"),
    )
    assert response.status_code == 400


async def test_change_password_refuses_api_tokens(world: World, client: AsyncTestClient[Any]) -> None:
    """Password changes need a session: an API token (even '*') is 403."""
    response = await client.post(
        "/api/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "a-brand-new-password"},
        headers=world.bearer("all"),
    )
    assert response.status_code == 403


async def test_create_token_returns_raw_once_and_stores_hash(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """POST /api/profile/tokens answers the raw rly_p_ token once; storage keeps SHA-256 + prefix."""
    response = await client.post(
        "/api/profile/tokens",
        json={"name": "ci", "scopes": ["alerts:read", "teams:read"], "expires_in_days": 30},
        headers=world.auth("viewer"),
    )
    assert response.status_code == 201
    body = response.json()
    raw = body["token"]
    assert raw.startswith("rly_p_")
    assert body["token_prefix"] == raw[:12]
    stored = await world.get("api_tokens", body["id"])
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    listed = (await client.get("/api/profile/tokens", headers=world.auth("viewer"))).json()
    assert [t["id"] for t in listed] == [body["id"]]
    assert "token" not in listed[0]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 403  # alerts:read/teams:read do not cover the profile domain


async def test_create_token_validation(world: World, client: AsyncTestClient[Any]) -> None:
    """An unknown scope is 400 validation_error."""
    response = await client.post(
        "/api/profile/tokens", json={"name": "x", "scopes": ["root:all"]}, headers=world.auth("viewer")
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["loc"] == "$.scopes"


async def test_tokens_require_authentication(client: AsyncTestClient[Any]) -> None:
    """Listing tokens without credentials is 401."""
    assert (await client.get("/api/profile/tokens")).status_code == 401


async def test_token_cannot_mint_wider_token(world: World, client: AsyncTestClient[Any]) -> None:
    """A token can only create tokens with scopes it has (here it lacks profile:write: 403)."""
    response = await client.post(
        "/api/profile/tokens", json={"name": "x", "scopes": ["*"]}, headers=world.bearer("teams_read")
    )
    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["profile:write"]


async def test_delete_token_only_own(world: World, client: AsyncTestClient[Any]) -> None:
    """Deleting another user's token is 404; deleting one's own answers {deleted, id} and revokes it."""
    token_id = world.ids["token_alerts_write"]
    assert (
        await client.delete(f"/api/profile/tokens/{token_id}", headers=world.auth("viewer"))
    ).status_code == 404
    response = await client.delete(f"/api/profile/tokens/{token_id}", headers=world.auth("responder"))
    assert response.status_code == 200
    assert response.json() == {"deleted": True, "id": token_id}
    assert await world.get("api_tokens", token_id) is None


async def test_expired_api_token_is_401(world: World, client: AsyncTestClient[Any]) -> None:
    """An API token past expires_at is refused with 401."""
    async with world.relay.uow_factory() as uow:
        token = await uow.api_tokens.get(world.ids["token_all"])
        await uow.api_tokens.update(attrs.evolve(token, expires_at=world.clock.now()))
        await uow.commit()
    assert (await client.get("/api/auth/me", headers=world.bearer("all"))).status_code == 401


async def test_star_token_authenticates_and_records_last_use(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """A '*' token works on the profile domain and updates last_used_at."""
    response = await client.get("/api/auth/me", headers=world.bearer("all"))
    assert response.status_code == 200
    assert response.json()["auth"]["via"] == "api_token"
    token = await world.get("api_tokens", world.ids["token_all"])
    assert token.last_used_at == world.clock.now()


async def test_update_profile(world: World, client: AsyncTestClient[Any]) -> None:
    """PUT /api/profile changes only the sent fields and validates them."""
    response = await client.put("/api/profile", json={"display_name": "Vi"}, headers=world.auth("viewer"))
    assert response.status_code == 200
    assert response.json()["display_name"] == "Vi"
    assert response.json()["email"] == "viewer@example.com"
    bad = await client.put("/api/profile", json={"phone": "12345"}, headers=world.auth("viewer"))
    assert bad.status_code == 400
    zone = await client.put("/api/profile", json={"timezone": "Mars/Base"}, headers=world.auth("viewer"))
    assert zone.status_code == 400
