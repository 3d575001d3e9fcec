"""Find voice and SMS provider classes by name (SPEC S7.2, S7.3, S7.9).

Lookup order for a name: built-ins (``stub``, ``simulator``), then classes registered by
plugins (``relay_register_voice_providers()``, handed in as a mapping), then the module file
``<providers_dir>/<name>.py``, imported as ``relay_voice_provider_<name>`` (``relay_sms_provider_``
for SMS) and required to define ``class Provider(BaseVoiceProvider)``.

Unchanged IncidentRelay modules import from ``app.notifiers.voice.base``; before importing a
file the loader points that name at :mod:`relay_core.voice`, but only when no real ``app``
package is importable, so an application that owns the name is never shadowed.

A :class:`ProviderLoader` loads each class once and keeps it: providers are read at process
start, and a changed file needs a restart. Messages are the ones the troubleshooting guide
lists (S7.8); they never contain secrets.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import threading
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, NoReturn

import attrs

from relay_core.sms import BaseSmsProvider
from relay_core.voice import BaseVoiceProvider

__all__ = [
    "SMS",
    "VOICE",
    "ProviderKind",
    "ProviderLoadError",
    "ProviderLoader",
    "ProviderNotFoundError",
    "install_compat_alias",
    "make_sms_loader",
    "make_voice_loader",
    "normalize_provider_name",
    "substitute_env",
]

logger = logging.getLogger("relay.voice.loader")

_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_ENV_REF_RE: Final = re.compile(r"^\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}$")
_ALIAS_MARKER: Final = "__relay_compat_alias__"
_RESTART_HINT: Final = "providers are loaded at process start; restart after adding a file"


@attrs.frozen
class ProviderKind:
    """What differs between voice and SMS providers."""

    label: str
    """``voice`` or ``sms``: starts every message (``voice provider not found: x``)."""
    base: type[Any]
    api_module: str
    """The relay_core module defining the provider API."""
    compat_module: str
    """The IncidentRelay import path aliased to ``api_module``."""

    @property
    def module_prefix(self) -> str:
        return f"relay_{self.label}_provider_"


VOICE: Final = ProviderKind("voice", BaseVoiceProvider, "relay_core.voice", "app.notifiers.voice.base")
SMS: Final = ProviderKind("sms", BaseSmsProvider, "relay_core.sms", "app.notifiers.sms.base")


class ProviderLoadError(RuntimeError):
    """A provider cannot be loaded; ``str(error)`` is the user-facing message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderNotFoundError(ProviderLoadError):
    """No built-in, plugin or file provides the name."""


def normalize_provider_name(name: str | None, kind: ProviderKind = VOICE) -> str:
    """Return ``name`` trimmed and lower-cased, or raise :class:`ProviderLoadError`.

    Raises:
        ProviderLoadError: ``"voice provider name is missing"`` or ``"voice provider name must
            contain only letters, numbers and underscore"`` (``sms`` for SMS).
    """
    normalized = str(name or "").strip().lower()
    if not normalized:
        raise ProviderLoadError(f"{kind.label} provider name is missing")
    if not _NAME_RE.match(normalized):
        raise ProviderLoadError(
            f"{kind.label} provider name must contain only letters, numbers and underscore"
        )
    return normalized


def substitute_env(config: Any, environ: Mapping[str, str], *, referenced_by: str | None = None) -> Any:
    """Replace each string value that is exactly ``${NAME}`` by ``environ[NAME]``, recursively.

    Mappings become dicts, lists stay lists and tuples stay tuples; other values are returned
    unchanged. An unset variable becomes ``""`` and logs a warning naming only the variable
    (``environment variable VOICE_API_TOKEN referenced by channel 12 is not set``).

    Args:
        config: The provider configuration (or any part of it).
        environ: The environment to read, usually ``os.environ``.
        referenced_by: Who references the variable, for the warning (``"channel 12"``).
    """
    if isinstance(config, str):
        match = _ENV_REF_RE.match(config)
        if match is None:
            return config
        variable = match.group(1)
        if variable in environ:
            return environ[variable]
        where = f" referenced by {referenced_by}" if referenced_by else ""
        logger.warning("environment variable %s%s is not set", variable, where)
        return ""
    if isinstance(config, Mapping):
        return {
            key: substitute_env(value, environ, referenced_by=referenced_by) for key, value in config.items()
        }
    if isinstance(config, list):
        return [substitute_env(value, environ, referenced_by=referenced_by) for value in config]
    if isinstance(config, tuple):
        return tuple(substitute_env(value, environ, referenced_by=referenced_by) for value in config)
    return config


def install_compat_alias(kind: ProviderKind = VOICE) -> bool:
    """Make ``kind.compat_module`` (``app.notifiers.voice.base``) import ``kind.api_module``.

    Returns:
        ``True`` when the alias is in place, ``False`` when a real ``app`` package exists (then
        nothing is changed).
    """
    parts = kind.compat_module.split(".")
    root = sys.modules.get(parts[0])
    if root is None:
        try:
            real = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            real = None
        if real is not None:
            return False
    elif not getattr(root, _ALIAS_MARKER, False):
        return False
    parent: types.ModuleType | None = None
    for depth in range(1, len(parts)):
        package_name = ".".join(parts[:depth])
        package = sys.modules.get(package_name)
        if package is None:
            package = types.ModuleType(package_name, "Relay's IncidentRelay import alias (SPEC S7.1).")
            package.__path__ = []
            package.__spec__ = importlib.machinery.ModuleSpec(package_name, None, is_package=True)
            setattr(package, _ALIAS_MARKER, True)
            sys.modules[package_name] = package
            if parent is not None:
                setattr(parent, parts[depth - 1], package)
        parent = package
    api = importlib.import_module(kind.api_module)
    sys.modules[kind.compat_module] = api
    if parent is not None:
        setattr(parent, parts[-1], api)
    return True


class ProviderLoader:
    """Resolves provider names to classes for one kind (voice or SMS).

    Args:
        kind: :data:`VOICE` or :data:`SMS`.
        builtins: Built-in classes by name; defaults to the ``stub`` provider of the kind.
        plugins: Classes registered by plugins, by name (``PluginRegistry.voice_providers``).
        providers_dir: Directory of provider module files; ``None`` disables file providers.
        compat_imports: Register the ``app.notifiers.<kind>.base`` alias before importing files
            (``voice.incidentrelay_compat_imports``).
    """

    def __init__(
        self,
        kind: ProviderKind = VOICE,
        *,
        builtins: Mapping[str, type[Any]] | None = None,
        plugins: Mapping[str, type[Any]] | None = None,
        providers_dir: str | os.PathLike[str] | None = None,
        compat_imports: bool = True,
    ) -> None:
        self.kind = kind
        chosen = _default_builtins(kind) if builtins is None else builtins
        self._builtins = {name.lower(): cls for name, cls in chosen.items()}
        self._plugins = {name.lower(): cls for name, cls in (plugins or {}).items()}
        self._dir = Path(providers_dir).expanduser() if providers_dir is not None else None
        self._compat_imports = compat_imports
        self._cache: dict[str, type[Any]] = {}
        self._lock = threading.RLock()

    @property
    def providers_dir(self) -> Path | None:
        return self._dir

    def load(self, name: str | None) -> type[Any]:
        """Return the provider class called ``name``.

        Raises:
            ProviderLoadError: The name is invalid, the file is outside ``providers_dir``,
                cannot be imported or defines no ``Provider``.
            ProviderNotFoundError: Nothing provides the name.
        """
        normalized = normalize_provider_name(name, self.kind)
        with self._lock:
            cached = self._cache.get(normalized)
            if cached is not None:
                return cached
            cls = (
                self._builtins.get(normalized)
                or self._plugin_class(normalized)
                or self._file_class(normalized)
            )
            self._cache[normalized] = cls
            return cls

    def create(
        self,
        name: str | None,
        config: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        referenced_by: str | None = None,
        http: Any = None,
    ) -> Any:
        """Load ``name``, resolve ``${ENV}`` values, validate the config and build the provider.

        Raises:
            ProviderLoadError: As :meth:`load`.
            RuntimeError: The provider's ``validate_config`` message, unchanged.
        """
        cls = self.load(name)
        resolved = substitute_env(
            dict(config or {}), os.environ if environ is None else environ, referenced_by=referenced_by
        )
        cls.validate_config(resolved)
        provider = cls(resolved)
        if http is not None:
            provider.http = http
        return provider

    def scan(self) -> dict[str, Path]:
        """List the usable files of ``providers_dir`` by name, logging the ones ignored.

        Files whose name breaks the naming rule log ``voice provider file ignored: invalid name``;
        files shadowed by a built-in or plugin provider are logged and left out.
        """
        found: dict[str, Path] = {}
        if self._dir is None or not self._dir.is_dir():
            return found
        for path in sorted(self._dir.glob("*.py")):
            stem = path.stem
            if stem == "__init__":
                continue
            if not _NAME_RE.match(stem):
                logger.warning("%s provider file ignored: invalid name (%s)", self.kind.label, path.name)
                continue
            if stem in self._builtins or stem in self._plugins:
                origin = "a built-in" if stem in self._builtins else "a plugin"
                logger.warning(
                    "%s provider file ignored: %s is shadowed by %s provider (%s)",
                    self.kind.label,
                    path.name,
                    origin,
                    stem,
                )
                continue
            found[stem] = path
        return found

    def sources(self) -> dict[str, str]:
        """Every available provider name and where it comes from (``builtin``, ``plugin``, the file)."""
        listing = dict.fromkeys(self._builtins, "builtin")
        for name in self._plugins:
            listing.setdefault(name, "plugin")
        for name, path in self.scan().items():
            listing.setdefault(name, str(path))
        return listing

    # --- internals ---------------------------------------------------------------------

    def _plugin_class(self, name: str) -> type[Any] | None:
        cls = self._plugins.get(name)
        if cls is not None and not (isinstance(cls, type) and issubclass(cls, self.kind.base)):
            raise ProviderLoadError(
                f"{self.kind.label} provider {name} from a plugin must subclass {self.kind.base.__name__}"
            )
        return cls

    def _file_class(self, name: str) -> type[Any]:
        label = self.kind.label
        if self._dir is None:
            self._not_found(name, None)
        base_dir = self._dir.resolve()
        path = (base_dir / f"{name}.py").resolve()
        if base_dir not in path.parents:
            raise ProviderLoadError(f"{label} provider path is outside providers_dir")
        if not path.is_file():
            self._not_found(name, path)
        module = self._import(name, path)
        cls = getattr(module, "Provider", None)
        if not (isinstance(cls, type) and issubclass(cls, self.kind.base)):
            raise ProviderLoadError(
                f"{label} provider {name} must define Provider({self.kind.base.__name__})"
            )
        return cls

    def _import(self, name: str, path: Path) -> types.ModuleType:
        module_name = f"{self.kind.module_prefix}{name}"
        existing = sys.modules.get(module_name)
        if existing is not None and getattr(existing, "__file__", None) == str(path):
            return existing
        if self._compat_imports:
            install_compat_alias(self.kind)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ProviderLoadError(f"cannot load {self.kind.label} provider: {name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            logger.error(
                "cannot load %s provider: %s (%s: %s)",
                self.kind.label,
                name,
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            raise ProviderLoadError(f"cannot load {self.kind.label} provider: {name}") from exc
        return module

    def _not_found(self, name: str, path: Path | None) -> NoReturn:
        label = self.kind.label
        searched = [
            f"built-ins ({', '.join(sorted(self._builtins)) or 'none'})",
            f"plugins ({', '.join(sorted(self._plugins)) or 'none'})",
            str(path) if path is not None else "no providers_dir configured",
        ]
        logger.error(
            "%s provider not found: %s; searched %s; %s", label, name, "; ".join(searched), _RESTART_HINT
        )
        raise ProviderNotFoundError(f"{label} provider not found: {name}")


def _default_builtins(kind: ProviderKind) -> dict[str, type[Any]]:
    from relay_adapters.voice import simulator, stub

    if kind.label == SMS.label:
        return {stub.SmsProvider.name: stub.SmsProvider, simulator.SmsProvider.name: simulator.SmsProvider}
    return {stub.Provider.name: stub.Provider, simulator.Provider.name: simulator.Provider}


def make_voice_loader(
    *,
    plugins: Mapping[str, type[Any]] | None = None,
    providers_dir: str | os.PathLike[str] | None = None,
    builtins: Mapping[str, type[Any]] | None = None,
    compat_imports: bool = True,
) -> ProviderLoader:
    """A :class:`ProviderLoader` for voice providers."""
    return ProviderLoader(
        VOICE, builtins=builtins, plugins=plugins, providers_dir=providers_dir, compat_imports=compat_imports
    )


def make_sms_loader(
    *,
    plugins: Mapping[str, type[Any]] | None = None,
    providers_dir: str | os.PathLike[str] | None = None,
    builtins: Mapping[str, type[Any]] | None = None,
    compat_imports: bool = True,
) -> ProviderLoader:
    """A :class:`ProviderLoader` for SMS providers."""
    return ProviderLoader(
        SMS, builtins=builtins, plugins=plugins, providers_dir=providers_dir, compat_imports=compat_imports
    )
