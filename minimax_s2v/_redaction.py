"""Keeping secrets out of exceptions: the one place the API key and callback secret are scrubbed.

Trust rule: no exception the SDK raises may carry the API key or the callback secret, in its
text, its attributes or anywhere in its ``__cause__``/``__context__`` chain. Secrets reach an
exception two ways, and both are closed here:

- a foreign exception that keeps the request it failed on: aiohttp's ``ClientResponseError``
  family (``TooManyRedirects`` among them) holds ``request_info`` with every request header,
  ``Authorization: Bearer <key>`` included. Such a link is replaced in the chain by a
  :class:`RedactedError` that keeps its type name and scrubbed message, nothing else;
- text a server echoes (a ``status_msg``, a body excerpt): every string attribute of the
  SDK's own exceptions is scrubbed of each known secret.

An exception must be raised *outside* the ``except`` block that caught the foreign one (or
be cleaned after the fact), since Python sets ``__context__`` at the ``raise``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import aiohttp
from yarl import URL

__all__ = ["REDACTED", "STRUCTURAL", "RedactedError", "Redactor", "describe", "shown_url"]

REDACTED = "<redacted>"
E = TypeVar("E", bound=BaseException)
_MIN_SECRET = 4  # shorter strings would scrub ordinary words; no real key or secret is this short
_MAX_DESCRIPTION = 300  # aiohttp quotes whole received buffers in some messages


def shown_url(url: URL | str) -> str:
    """``url`` as messages and reprs show it: without the user and password it may carry."""
    parsed = URL(str(url))
    return str(parsed.with_user(None)) if parsed.user or parsed.password else str(parsed)


def describe(error: BaseException, scrub: Callable[[str], str] | None = None) -> str:
    """``Type: message`` of a foreign exception, for an SDK message; cut to a few lines.

    ``scrub`` (a :meth:`Redactor.text`) runs before the cut: a secret cut in half would no
    longer be found, and its first half would stay.
    """
    text = f"{type(error).__name__}: {_safe_text(error, str)}"
    if scrub is not None:
        text = scrub(text)
    return text if len(text) <= _MAX_DESCRIPTION else text[:_MAX_DESCRIPTION] + "…"


class RedactedError(Exception):
    """A foreign exception replaced in a chain because it carried request headers or a secret.

    Attributes:
        original_type: the qualified name of the exception it stands for.
    """

    def __init__(self, original_type: str, message: str) -> None:
        self.original_type = original_type
        super().__init__(f"{original_type}: {message}" if message else original_type)


def _safe_text(value: object, render: type[str] | None = None) -> str:
    try:
        return repr(value) if render is None else str(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the error it describes
        return f"<{type(value).__qualname__}>"


class Redactor:
    """Scrubs given secrets (and headers kept by foreign exceptions) from exceptions and text.

    Args:
        secrets: the strings (or bytes) that must never appear; empty or very short ones are
            ignored.
    """

    __slots__ = ("_secrets",)

    def __init__(self, *secrets: str | bytes | None) -> None:
        found: set[str] = set()
        for secret in secrets:
            if isinstance(secret, bytes):
                secret = secret.decode("utf-8", "replace")  # noqa: PLW2901 - one spelling
            if secret and len(secret.strip()) >= _MIN_SECRET:
                found.add(secret)
                found.add(secret.strip())
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted>``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def raw(self, data: bytes) -> bytes:
        """``data`` (a body as received) with every secret's UTF-8 bytes replaced."""
        for secret in self._secrets:
            encoded = secret.encode()
            if encoded in data:
                data = data.replace(encoded, REDACTED.encode())
        return data

    def json(self, data: object) -> object:
        """A decoded JSON document with every secret scrubbed from its strings.

        A document nested too deeply to walk gives ``None``, as if it were not JSON.
        """
        try:
            return self._json(data)
        except RecursionError:
            return None

    def _json(self, data: object) -> object:
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list):
            return [self._json(item) for item in data]
        if isinstance(data, dict):
            return {self.text(key): self._json(value) for key, value in data.items()}
        return data

    def mentions_secret(self, text: str) -> bool:
        """Whether ``text`` contains one of the secrets."""
        return any(secret in text for secret in self._secrets)

    def clean(self, error: E) -> E:
        """Scrub ``error`` and its whole ``__cause__``/``__context__`` chain in place; return it.

        The SDK's own exceptions keep their class and have their text scrubbed; a foreign
        link that carries request headers or a secret is replaced by a
        :class:`RedactedError`.
        """
        seen: set[int] = set()
        pending: list[BaseException] = [error]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            self._scrub_attributes(current)
            for link_name in ("__cause__", "__context__"):
                link = getattr(current, link_name)
                if link is None:
                    continue
                if self._leaks(link):
                    suppress = current.__suppress_context__
                    setattr(current, link_name, self._stand_in(link))
                    current.__suppress_context__ = suppress  # setting __cause__ changes it
                else:
                    pending.append(link)
        return error

    def cause(self, error: BaseException) -> BaseException:
        """``error`` cleaned if it may be kept as a ``__cause__``, else its stand-in."""
        return self._stand_in(error) if self._leaks(error) else self.clean(error)

    def _leaks(self, error: BaseException) -> bool:
        from ._errors import MiniMaxError

        if isinstance(error, MiniMaxError | RedactedError):
            return False  # our own: scrubbed in place instead
        if isinstance(error, aiohttp.ClientResponseError):
            return True  # keeps request_info, i.e. every request header
        texts = (
            _safe_text(error),
            _safe_text(error, str),
            _safe_text(getattr(error, "__dict__", "")),
        )
        return any(self.mentions_secret(text) for text in texts)

    def _stand_in(self, error: BaseException) -> RedactedError:
        message = _safe_text(error, str)
        if isinstance(error, aiohttp.ClientResponseError):
            # Its str() names status, message and URL; never the headers.
            message = f"HTTP {error.status}, {error.message or 'no message'}"
        return RedactedError(type(error).__qualname__, self.text(message))

    def _scrub_attributes(self, error: BaseException) -> None:
        from ._errors import MiniMaxError

        if not isinstance(error, MiniMaxError | RedactedError):
            return  # a foreign exception that mentions no secret: left as it is
        error.args = tuple(self._scrub_value(value) for value in error.args)
        for name, value in list(vars(error).items()):
            scrubbed = self._scrub_value(value)
            if scrubbed is not value:
                setattr(error, name, scrubbed)

    def _scrub_value(self, value: object) -> object:
        from ._errors import Problem

        if isinstance(value, str):
            cleaned = self.text(value)
            return value if cleaned == value else cleaned
        if isinstance(value, tuple) and any(isinstance(v, str) for v in value):
            items = tuple(self._scrub_value(v) for v in value)
            return value if items == value else items
        if isinstance(value, BaseException):
            return self.clean(value)  # e.g. TaskFailedError.api_error
        if isinstance(value, tuple) and any(isinstance(v, Problem) for v in value):
            problems = tuple(self._scrub_value(v) for v in value)
            return value if problems == value else problems
        if isinstance(value, Problem):
            message = self.text(value.message)
            return value if message == value.message else Problem(value.field, message)
        return value


#: Scrubs only what is leaky by construction (foreign exceptions holding request headers).
STRUCTURAL = Redactor()
