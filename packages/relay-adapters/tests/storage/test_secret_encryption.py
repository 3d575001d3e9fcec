"""Channel and provider secrets are encrypted at rest (SPEC S1.1, S13.4), on SQLite and PostgreSQL.

The raw rows are read with plain SQL, outside the repositories, to see what an attacker with a
database dump would see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from relay_adapters.compose import make_uow_factory
from relay_adapters.settings import DatabaseSettings, MainSettings, RelaySettings
from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_adapters.storage.sqlalchemy.encryption import (
    SecretsUnreadable,
    derive_encryption_key,
)
from relay_adapters.storage.sqlalchemy.tables import metadata
from relay_core.domain.errors import StorageUnavailable
from relay_core.domain.model import Channel, Route

KEY = derive_encryption_key(secret_key="test-secret-key-" + "s" * 32)
OTHER_KEY = derive_encryption_key(secret_key="another-secret-key-" + "o" * 32)

WEBHOOK_URL = "https://hooks.slack.com/services/T0001/B0002/webhookSECRETpart"
BOT_TOKEN = "123456789:AAbotTOKENsecretValue"
SMTP_PASSWORD = "smtp-PASSWORD-secret"
CALLBACK_SECRET = "cbSECRET-0123456789abcdef"
GRAFANA_SECRET = "grafana-SIGNING-secret"
PLAINTEXTS = (WEBHOOK_URL, BOT_TOKEN, SMTP_PASSWORD, CALLBACK_SECRET, GRAFANA_SECRET)


@pytest.fixture
async def factory(sql_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
    made = SqlAlchemyUnitOfWorkFactory(sql_url, encryption_key=KEY)
    yield made
    await made.aclose()


def _channel(**changes: Any) -> Channel:
    config = {
        "webhook_url": WEBHOOK_URL,
        "bot_token": BOT_TOKEN,
        "password": SMTP_PASSWORD,
        "notify_on_severities": ["critical"],
        "nested": {"list": [1, 2.5, None, True], "unicode": "événement"},
    }
    fields: dict[str, Any] = {
        "group_id": 1,
        "name": "ops",
        "channel_type": "slack",
        "config": config,
        "callback_secret": CALLBACK_SECRET,
    }
    return Channel(**(fields | changes))


def _route() -> Route:
    return Route(
        team_id=1,
        name="grafana",
        source="grafana",
        integration_config={"grafana": {"secret": GRAFANA_SECRET}},
    )


async def _raw(made: SqlAlchemyUnitOfWorkFactory, statement: str, **params: Any) -> list[Any]:
    async with made.engine.connect() as conn:
        return list((await conn.execute(sa.text(statement), params)).all())


async def _raw_channel(made: SqlAlchemyUnitOfWorkFactory, ident: int) -> tuple[str, str | None]:
    rows = await _raw(
        made, "SELECT CAST(config AS TEXT), callback_secret FROM channels WHERE id = :id", id=ident
    )
    return rows[0][0], rows[0][1]


async def test_secrets_are_encrypted_in_the_row_and_read_back_in_clear(
    factory: SqlAlchemyUnitOfWorkFactory,
) -> None:
    async with factory() as uow:
        channel = await uow.channels.add(_channel())
        route = await uow.routes.add(_route())
        await uow.commit()

    config_text, secret_text = await _raw_channel(factory, channel.id)
    (route_text,) = (await _raw(factory, "SELECT CAST(integration_config AS TEXT) FROM routes"))[0]
    dump = " ".join(str(row) for row in await _raw(factory, "SELECT * FROM channels"))
    dump += " ".join(str(row) for row in await _raw(factory, "SELECT * FROM routes"))
    for plaintext in PLAINTEXTS:
        assert plaintext not in dump
        assert plaintext not in config_text + (secret_text or "") + route_text
    assert "$enc" in config_text
    assert "$enc" in route_text
    assert secret_text is not None
    assert secret_text.startswith("enc:v1:")

    async with factory() as uow:
        stored = await uow.channels.get(channel.id)
        stored_route = await uow.routes.get(route.id)
        found = await uow.channels.find(group_id=1)
    assert stored == channel
    assert found == [channel]
    assert stored is not None
    assert stored.notify_on_severities == ("critical",)
    assert stored_route is not None
    assert stored_route.integration_config == route.integration_config


async def test_every_write_path_encrypts(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    async with factory() as uow:
        channel = await uow.channels.add(_channel())
        await uow.commit()
    new_url = WEBHOOK_URL + "-rotated"
    async with factory() as uow:
        updated = await uow.channels.update(attrs.evolve(channel, config={"webhook_url": new_url}))
        await uow.commit()
    config_text, _ = await _raw_channel(factory, channel.id)
    assert "rotated" not in config_text
    assert "$enc" in config_text

    async with factory() as uow:
        changed = await uow.channels.update_where(
            channel.id, {"enabled": True}, {"callback_secret": "fresh-SECRET", "config": {"k": "v-SECRET"}}
        )
        await uow.commit()
    assert changed is not None
    assert changed.callback_secret == "fresh-SECRET"
    assert changed.config == {"k": "v-SECRET"}
    config_text, secret_text = await _raw_channel(factory, channel.id)
    assert "SECRET" not in config_text
    assert secret_text is not None
    assert "SECRET" not in secret_text

    async with factory() as uow:
        again = await uow.channels.get(channel.id)
    assert again == attrs.evolve(updated, callback_secret="fresh-SECRET", config={"k": "v-SECRET"})


async def test_same_value_gives_different_ciphertexts(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    async with factory() as uow:
        first = await uow.channels.add(_channel(name="a"))
        second = await uow.channels.add(_channel(name="b"))
        await uow.commit()
    assert await _raw_channel(factory, first.id) != await _raw_channel(factory, second.id)


async def test_legacy_plaintext_rows_still_read_and_are_encrypted_on_the_next_write(
    factory: SqlAlchemyUnitOfWorkFactory,
) -> None:
    channels = metadata.tables["channels"]
    legacy_config = {"webhook_url": WEBHOOK_URL, "bot_token": BOT_TOKEN}
    async with factory.engine.begin() as conn:
        result = await conn.execute(
            sa.insert(channels)
            .values(
                group_id=1,
                name="legacy",
                channel_type="slack",
                config=legacy_config,
                enabled=True,
                callback_secret=CALLBACK_SECRET,
            )
            .returning(channels.c.id)
        )
        ident = result.scalar_one()
    config_text, secret_text = await _raw_channel(factory, ident)
    assert WEBHOOK_URL in config_text
    assert secret_text == CALLBACK_SECRET

    async with factory() as uow:
        legacy = await uow.channels.get(ident)
        assert legacy is not None
        assert dict(legacy.config) == legacy_config
        assert legacy.callback_secret == CALLBACK_SECRET
        await uow.channels.update(attrs.evolve(legacy, name="legacy-renamed"))
        await uow.commit()

    config_text, secret_text = await _raw_channel(factory, ident)
    assert WEBHOOK_URL not in config_text
    assert secret_text != CALLBACK_SECRET
    async with factory() as uow:
        reread = await uow.channels.get(ident)
    assert reread is not None
    assert dict(reread.config) == legacy_config
    assert reread.callback_secret == CALLBACK_SECRET


async def test_a_different_key_fails_clearly(factory: SqlAlchemyUnitOfWorkFactory, sql_url: str) -> None:
    async with factory() as uow:
        channel = await uow.channels.add(_channel())
        await uow.commit()

    for key in (OTHER_KEY, None):
        other = SqlAlchemyUnitOfWorkFactory(sql_url, encryption_key=key)
        try:
            async with other() as uow:
                with pytest.raises(SecretsUnreadable) as caught:
                    await uow.channels.get(channel.id)
                with pytest.raises(StorageUnavailable):
                    await uow.channels.find()
        finally:
            await other.aclose()
        assert "channels." in caught.value.message
        assert "encryption_key" in caught.value.message
        assert caught.value.status == 503
        for plaintext in PLAINTEXTS:
            assert plaintext not in caught.value.message


async def test_a_ciphertext_moved_to_another_column_does_not_open(
    factory: SqlAlchemyUnitOfWorkFactory,
) -> None:
    async with factory() as uow:
        channel = await uow.channels.add(_channel())
        await uow.routes.add(_route())
        await uow.commit()
    # The route's sealed document, pasted into the channel's config: same key, other column.
    await _copy_column(factory, "routes", "integration_config", "channels", "config")
    async with factory() as uow:
        with pytest.raises(SecretsUnreadable):
            await uow.channels.get(channel.id)


async def _copy_column(
    made: SqlAlchemyUnitOfWorkFactory, src: str, src_col: str, dst: str, dst_col: str
) -> None:
    source, target = metadata.tables[src], metadata.tables[dst]
    async with made.engine.begin() as conn:
        value = (await conn.execute(sa.select(source.c[src_col]))).scalar_one()
        await conn.execute(sa.update(target).values({dst_col: value}))


async def test_filtering_on_an_encrypted_column_is_refused(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    async with factory() as uow:
        with pytest.raises(ValueError, match="encrypted"):
            await uow.channels.find(callback_secret=CALLBACK_SECRET)
        assert await uow.channels.find(callback_secret=None) == []


async def test_compose_processes_share_the_derived_key(tmp_path: Path) -> None:
    """Server, worker and CLI each call make_uow_factory: the same settings give the same key,
    including the generated ``<data_dir>/secret_key`` of an embedded set-up."""
    from relay_adapters.storage.sqlalchemy.schema import migrate

    url = f"sqlite:///{tmp_path / 'relay.db'}"
    settings = RelaySettings(
        main=MainSettings(data_dir=str(tmp_path / "data")), database=DatabaseSettings(url=url)
    )
    await migrate(url)
    writer = make_uow_factory(settings)
    reader = make_uow_factory(settings)
    assert isinstance(writer, SqlAlchemyUnitOfWorkFactory)
    assert isinstance(reader, SqlAlchemyUnitOfWorkFactory)
    try:
        async with writer() as uow:
            channel = await uow.channels.add(_channel())
            await uow.commit()
        async with reader() as uow:
            assert await uow.channels.get(channel.id) == channel
        config_text, _ = await _raw_channel(reader, channel.id)
        assert WEBHOOK_URL not in config_text
    finally:
        await writer.aclose()
        await reader.aclose()

    # secret_key rotated: pinning encryption_key to the previous secret key keeps secrets readable.
    previous = (tmp_path / "data" / "secret_key").read_text().strip()
    rotated = attrs.evolve(settings, main=attrs.evolve(settings.main, secret_key="rotated-" + "r" * 32))
    pinned = attrs.evolve(rotated, main=attrs.evolve(rotated.main, encryption_key=previous))
    for candidate, readable in ((rotated, False), (pinned, True)):
        made = make_uow_factory(candidate)
        assert isinstance(made, SqlAlchemyUnitOfWorkFactory)
        try:
            async with made() as uow:
                if readable:
                    assert await uow.channels.get(channel.id) == channel
                else:
                    with pytest.raises(SecretsUnreadable):
                        await uow.channels.get(channel.id)
        finally:
            await made.aclose()
