"""Fixtures for ``relay`` command tests: a clean RELAY_* environment on a temporary data dir."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from typer.testing import CliRunner, Result

from relay_adapters.compose import aclose_relay, relay_from_settings
from relay_adapters.settings import RelaySettings, load_settings
from relay_core.bootstrap import Relay
from relay_server.cli import app

T = TypeVar("T")


@attrs.define
class Cli:
    """Runs ``relay`` in-process against one data directory."""

    data_dir: Path
    runner: CliRunner

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(app, list(args), input=input, env=env)

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.ok(*args, **kwargs).stdout)

    @property
    def settings(self) -> RelaySettings:
        return load_settings()

    def query(self, work: Callable[[Relay], Awaitable[T]]) -> T:
        """Run ``work`` against the same database the commands use."""

        async def run() -> T:
            relay = relay_from_settings(self.settings)
            try:
                return await work(relay)
            finally:
                await aclose_relay(relay)

        return asyncio.run(run())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name in list(os.environ):
        if name.startswith("RELAY_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("RELAY_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    return Cli(data_dir=data_dir, runner=CliRunner())
