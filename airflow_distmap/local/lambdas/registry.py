"""Which Python callable answers which Lambda function name or ARN."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Lambda's default function timeout, in seconds.
DEFAULT_TIMEOUT_SECONDS = 3.0
#: Memory (MB) a function gets when it does not say; Lambda's console default for new Python functions is 128,
#: but local handlers usually load pandas or pyarrow, so the local default is roomier.
DEFAULT_MEMORY_MB = 1024
#: Optional per-function settings file in a function folder, with Lambda's field names.
FUNCTION_CONFIG_FILE = "function.json"

# name | partial ARN ([REGION:]ACCOUNT:function:NAME) | full ARN, each with an optional :qualifier.
_FUNCTION_RE = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"|(?:(?P<pregion>[a-z]{2}[a-z0-9-]*-\d):)?(?P<paccount>\d{12}):function:)?"
    r"(?P<name>[A-Za-z0-9_-]{1,140})(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)


class FunctionNotFound(LookupError):
    """Raised when a function name or ARN matches no registered function (AWS: ResourceNotFoundException).

    :param name: the function name or ARN that was asked for.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"Function not found: {name}")
        self.name = name


@dataclass(frozen=True)
class FunctionSpec:
    """One local Lambda function.

    :param name: function name.
    :param handler: ``"module:callable"`` (or ``module.callable``), called as ``f(event, context)``.
    :param code_dir: folder put first on the worker's ``sys.path`` (Lambda's ``/var/task``), if any.
    :param timeout: seconds an invocation may run before it fails with ``Sandbox.Timedout``.
    :param memory_mb: memory budget of one worker process, enforced with ``RLIMIT_AS`` (``None``: unlimited).
    """

    name: str
    handler: str
    code_dir: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    memory_mb: int | None = DEFAULT_MEMORY_MB
    environment: Mapping[str, str] = field(default_factory=dict)

    def module_and_attr(self) -> tuple[str, str]:
        """Split :attr:`handler` into module and attribute names."""
        if ":" in self.handler:
            module, _, attr = self.handler.partition(":")
        else:
            module, _, attr = self.handler.rpartition(".")
        if not module or not attr:
            raise ValueError(f"Handler {self.handler!r} of function {self.name!r} is not 'module:callable'")
        return module, attr


def parse_function_name(function: str) -> tuple[str, str | None]:
    """The function name and qualifier in a name, partial ARN or full ARN.

    :param function: ``NAME``, ``NAME:qualifier``, ``[REGION:]ACCOUNT:function:NAME`` or
        ``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:qualifier]``.
    :raises FunctionNotFound: when ``function`` is none of these shapes.
    """
    match = _FUNCTION_RE.match(function)
    if match is None:
        raise FunctionNotFound(function)
    return match.group("name"), match.group("qualifier")


def parse_function_option(option: str) -> tuple[str, str]:
    """Split a ``NAME=module:callable`` command-line option.

    :param option: the option text.
    :raises ValueError: when it is not of that shape.
    """
    name, sep, handler = option.partition("=")
    name, handler = name.strip(), handler.strip()
    if not sep or not name or not handler:
        raise ValueError(f"Expected NAME=module:callable, got {option!r}")
    if not _FUNCTION_RE.match(name) or ":" in name:
        raise ValueError(
            f"Expected NAME=module:callable, got {option!r}: {name!r} is not a Lambda function name (1 to 64 "
            "letters, digits, '-' or '_')"
        )
    FunctionSpec(name, handler).module_and_attr()
    return name, handler


class FunctionRegistry:
    """Registered local Lambda functions, looked up by name or ARN.

    :param specs: the functions.
    """

    def __init__(self, specs: Iterable[FunctionSpec] = ()) -> None:
        self._specs: dict[str, FunctionSpec] = {}
        self._resolved: dict[str, FunctionSpec] = {}  # reference (name or ARN) -> spec, for the hot path
        for spec in specs:
            self.add(spec)

    @classmethod
    def build(
        cls, functions_dir: str | Path | None = None, functions: Mapping[str, str] | None = None
    ) -> FunctionRegistry:
        """Discover ``functions_dir`` (if it exists) and then apply ``functions`` overrides.

        :param functions_dir: folder holding ``<name>/handler.py`` function folders.
        :param functions: ``NAME -> "module:callable"`` extra functions, replacing discovered namesakes.
        """
        registry = cls()
        if functions_dir is not None:
            registry.discover(functions_dir)
        for name, handler in (functions or {}).items():
            registry.add(FunctionSpec(name=name, handler=handler))
        return registry

    def add(self, spec: FunctionSpec) -> None:
        """Register ``spec``, replacing a function of the same name.

        :param spec: the function.
        """
        parse_function_name(spec.name)
        spec.module_and_attr()
        self._specs[spec.name] = spec
        self._resolved = {}

    def discover(self, functions_dir: str | Path) -> list[str]:
        """Register every ``<functions_dir>/<name>/handler.py`` as function ``<name>`` (``handler:handler``).

        A ``function.json`` next to ``handler.py`` may set ``Timeout`` (seconds), ``MemorySize`` (MB) and
        ``Environment`` (``{"Variables": {...}}``), as in Lambda's function configuration.

        :param functions_dir: the folder; nothing happens when it does not exist.
        :return: the names registered.
        """
        root = Path(functions_dir).resolve()
        if not root.is_dir():
            return []
        found = []
        for folder in sorted(p for p in root.iterdir() if (p / "handler.py").is_file()):
            config = _read_config(folder / FUNCTION_CONFIG_FILE)
            memory = config.get("MemorySize", DEFAULT_MEMORY_MB)
            spec = FunctionSpec(
                name=folder.name,
                handler="handler:handler",
                code_dir=str(folder),
                timeout=float(config.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
                memory_mb=None if memory is None else int(memory),
                environment=dict(config.get("Environment", {}).get("Variables", {})),
            )
            try:
                self.add(spec)
            except (FunctionNotFound, ValueError):
                log.warning("Skipping %s: %r is not a valid Lambda function name", folder, folder.name)
                continue
            found.append(folder.name)
        return found

    def resolve(self, function: str) -> FunctionSpec:
        """The function a name, partial ARN or full ARN refers to.

        :param function: the name or ARN.
        :raises FunctionNotFound: when nothing is registered under that name.
        """
        spec = self._resolved.get(function)
        if spec is not None:
            return spec
        name, _qualifier = parse_function_name(function)
        try:
            spec = self._specs[name]
        except KeyError:
            raise FunctionNotFound(function) from None
        if len(self._resolved) < 10_000:
            self._resolved[function] = spec
        return spec

    def update_settings(self, name: str, **changes: object) -> None:
        """Change settings (``timeout``, ``memory_mb``, ...) of a registered function.

        :param name: the function name.
        :param changes: :class:`FunctionSpec` fields to replace.
        """
        self._specs[name] = replace(self.resolve(name), **changes)  # type: ignore[arg-type]
        self._resolved = {}

    def names(self) -> list[str]:
        """Registered function names, sorted."""
        return sorted(self._specs)

    def specs(self) -> list[FunctionSpec]:
        """Registered functions, sorted by name."""
        return [self._specs[name] for name in self.names()]

    def __contains__(self, function: object) -> bool:
        if not isinstance(function, str):
            return False
        try:
            self.resolve(function)
        except FunctionNotFound:
            return False
        return True


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        config = json.load(handle)
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return config
