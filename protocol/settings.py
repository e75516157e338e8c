"""What the node's and the controller's settings objects share: secrets read from files,
and the environment section of their ``--help``.

Each process has one pydantic-settings object (``nodes/settings.py``,
``controller/core/config.py``), a subclass of :class:`ProcessSettings`. Its values come,
highest first, from

1. the command line (each process passes its flags as keyword arguments),
2. the environment (``ESCAPE_…``; an empty variable counts as unset),
3. for a secret (a :class:`~pydantic.SecretStr` field), ``NAME_FILE``: a file holding it,
   read by :func:`protocol.secrets.read_secret_file` (refused when group or others may
   read it),
4. the field's default.

>>> import os
>>> from pydantic import SecretStr
>>> class Demo(ProcessSettings, env_prefix="DEMO_"):
...     PASSWORD: SecretStr | None = None
>>> sorted(variables(Demo))
['DEMO_PASSWORD', 'DEMO_PASSWORD_FILE']
"""

from __future__ import annotations

import argparse
import os
import textwrap
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from protocol.secrets import read_secret_file

#: ends the name of the variable that names a secret's file
FILE_SUFFIX = "_FILE"


class SecretFileError(ValueError):
    """A ``NAME_FILE`` variable names a file that cannot be used: missing, or readable by
    others. Raised while the settings are read, so a process refuses to start."""


def is_secret(field: FieldInfo) -> bool:
    """True for a ``SecretStr`` field (or ``SecretStr | None``)."""
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return SecretStr in typing.get_args(annotation)
    return annotation is SecretStr


def env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    """The environment variable that sets *field_name*: its alias, or prefix + name."""
    field = settings_cls.model_fields[field_name]
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    return f"{settings_cls.model_config.get('env_prefix', '')}{field_name}".upper()


class SecretFiles(PydanticBaseSettingsSource):
    """``NAME_FILE=/path`` for each secret field ``NAME``: the secret is that file's content."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = env_name(self.settings_cls, field_name) + FILE_SUFFIX
        path = _environ().get(variable) if is_secret(field) else None
        if not path:
            return None, field_name, False
        try:
            return read_secret_file(path), field_name, False
        except OSError as exc:
            msg = f"{variable}: {exc}"
            raise SecretFileError(msg) from exc

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                found[key] = value
        return found


def _environ() -> dict[str, str]:
    # case-insensitive, as pydantic-settings reads the other variables
    return {key.upper(): value for key, value in os.environ.items()}


class ProcessSettings(BaseSettings):
    """The base of each process's settings object (see the module's docstring)."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFiles(settings_cls)

    @classmethod
    def with_flags(cls, **flags: Any) -> typing.Self:
        """The settings with the command line's flags on top (a flag left out is None)."""
        return cls(**{name: value for name, value in flags.items() if value is not None})


def flag_type(settings_cls: type[BaseSettings], field_name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` that checks a flag by its field's rule (the same bounds for the
    flag as for the variable: the rule is written once, on the field)."""
    field = settings_cls.model_fields[field_name]
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[field.annotation, *field.metadata])

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            msg = f"{text!r}: {exc.errors()[0]['msg'].lower()} ({field.description})"
            raise argparse.ArgumentTypeError(msg) from None

    parse.__name__ = field_name.lower()
    return parse


def settings_error(settings_cls: type[BaseSettings], exc: ValueError) -> str:
    """What is wrong with the settings, by the variable's name (a secret's value unsaid)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ("?",)
        field = str(loc[0])
        known = settings_cls.model_fields.get(field)
        name = env_name(settings_cls, field) if known else field
        got = "" if known is None or is_secret(known) else f" (got {error.get('input')!r})"
        lines.append(f"{name}: {error['msg'].lower()}{got}")
    return "; ".join(lines)


def variables(settings_cls: type[BaseSettings]) -> dict[str, str]:
    """Every environment variable *settings_cls* reads → what it is for (and its default)."""
    found: dict[str, str] = {}
    for name, field in settings_cls.model_fields.items():
        variable = env_name(settings_cls, name)
        text = str(field.description or name)
        default = field.default
        if default is not None and not isinstance(default, Path):   # paths say it in words
            text += f" (default: {int(default) if isinstance(default, bool) else default})"
        found[variable] = text
        if is_secret(field):
            found[variable + FILE_SUFFIX] = (f"a file holding {variable}, instead of it "
                                             "(mode 0600: refused when others may read it)")
    return found


def environment_help(title: str, entries: dict[str, str]) -> str:
    """The ``environment variables`` section of a ``--help``: one entry per variable."""
    width = max(len(name) for name in entries) + 1
    lines = [title]
    for name, text in entries.items():
        lines += textwrap.wrap(text, width=100, initial_indent=f"  {name:<{width}} ",
                               subsequent_indent=" " * (width + 3))
    return "\n".join(lines)
