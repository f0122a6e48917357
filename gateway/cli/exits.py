"""How a `govshare` command ends: its exit codes, and the one place (`handles_errors`) where SDK
errors and local mistakes become one line on stderr and one of them.

Exit codes: 0 success, 1 refused by the gateway or failed verification, 2 usage error, 3 gateway
unreachable or no answer (deadline passed, call cancelled).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from agencies import errors
from gateway.text import shown
from govshare.columns import ColumnError

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class LocalMistake(click.ClickException):
    """A mistake on this side (a missing file, a wrong certificate folder, a bad profile): one
    line saying what to fix, exit 2 (usage error)."""

    exit_code = EXIT_USAGE


def handles_errors(command: Callable) -> Callable:
    """Turn SDK errors and local mistakes into one line on stderr and a reliable exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        _check_utf8_arguments(click.get_current_context())
        try:
            return command(*args, **kwargs)
        except errors.Unavailable as exc:
            click.echo(f"Error: {shown(_unreachable(exc.message))}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except (errors.DeadlineExceeded, errors.Cancelled) as exc:  # no answer: retry later
            click.echo(f"Error: {shown(str(exc))}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except errors.GovshareError as exc:
            click.echo(f"Error: {shown(str(exc))}", err=True)
            sys.exit(EXIT_REFUSED)
        except ColumnError as exc:  # content to publish that is not what its media type says
            raise LocalMistake(f"the content does not read as its media type: {exc}") from None
        except OSError as exc:  # a local file: the content to publish, the --to of a fetch
            where = f" {exc.filename}" if exc.filename else ""
            raise LocalMistake(f"cannot use{where}: {exc.strerror or exc}; check the path and"
                               " its permissions") from None

    return run


def _check_utf8_arguments(ctx: click.Context | None) -> None:
    """Every text argument of the command and its groups encodes as UTF-8: one that does not
    (bytes the terminal's encoding cannot decode reach Python as lone surrogates) could not go
    into a request."""
    while ctx is not None:
        for param in ctx.command.params:
            value = ctx.params.get(param.name or "")
            texts = value if isinstance(value, tuple) else (value,)
            if any(isinstance(text, str) and not encodes(text) for text in texts):
                name = param.opts[0] if isinstance(param, click.Option) else \
                    param.human_readable_name
                raise LocalMistake(f"{name} is not valid UTF-8 text: give it in UTF-8 (check"
                                   " the terminal's encoding, or convert with iconv)")
        ctx = ctx.parent


def encodes(text: str) -> bool:
    """Whether `text` can go into a request (lone surrogates cannot)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_HANDSHAKE_REFUSED = "Socket closed"
"""What grpc reports when the gateway closes the connection in the TLS handshake, as it does
for a client certificate it does not trust."""
_GATEWAY_UNTRUSTED = "Tls handshake failed"
"""What grpc reports when this side does not trust the gateway's certificate."""


def _unreachable(message: str) -> str:
    """The one-line cause of an UNAVAILABLE call; TLS handshake refusals say which side."""
    if message.startswith("failed to connect to all addresses"):
        if message.endswith(_HANDSHAKE_REFUSED):
            return ("the gateway closed the connection during the TLS handshake: the"
                    " certificate may not be trusted by this gateway (issued by another CA, or"
                    f" expired); check --certs ({message})")
        if _GATEWAY_UNTRUSTED in message and "CERTIFICATE_VERIFY_FAILED" in message:
            return ("the gateway's TLS certificate is not trusted by the ca.pem of --certs:"
                    f" use a certificate folder of this gateway's network ({message})")
    return f"gateway unreachable or unavailable: {message}"
