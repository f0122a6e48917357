"""Enum short names: a proto enum value without its type prefix ("PUBLIC" for
CLASSIFICATION_PUBLIC), the form the gateway stores and people type."""

from __future__ import annotations

from typing import Any

from govshare import errors


def enum_name(enum: Any, value: int) -> str:
    """The short name of an enum value ("PUBLIC")."""
    return enum.Name(value).removeprefix(_prefix(enum))


def enum_names(enum: Any) -> list[str]:
    """The short names of an enum's values, UNSPECIFIED left out."""
    prefix = _prefix(enum)
    return [value.name.removeprefix(prefix) for value in enum.DESCRIPTOR.values[1:]]


def enum_value(enum: Any, value: int | str) -> int:
    """An enum value from its number, full name or short name ("PUBLIC", "csv"); ValueError
    naming the choices otherwise."""
    if isinstance(value, int):
        return value
    prefix = _prefix(enum)
    name = value.upper().replace("-", "_")
    try:
        return enum.Value(name if name.startswith(prefix) else prefix + name)
    except ValueError:
        choices = ", ".join(enum_names(enum))
        raise ValueError(f"unknown {enum.DESCRIPTOR.name} {value!r}; use one of {choices}") \
            from None


def check_enum(enum: Any, value: int, field: str) -> None:
    """INVALID_ARGUMENT naming `field` unless `value` is one of the enum's values, not 0."""
    if value == 0 or value not in enum.values():
        allowed = ", ".join(value.name for value in enum.DESCRIPTOR.values[1:])
        raise errors.InvalidArgument(f"{field} must be one of {allowed}", field=field)


def optional_enum(enum: Any, value: int, field: str) -> str:
    """The short name of a filter's enum value, "" for 0 (no filter)."""
    if value == 0:
        return ""
    check_enum(enum, value, field)
    return enum_name(enum, value)


def _prefix(enum: Any) -> str:
    return enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")
