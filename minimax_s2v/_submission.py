"""A submission made ready to send, off the event loop: its exact body, fingerprint and journal.

A local face of 14.5 MB becomes a body of about 19 MB. Built on the event loop as one string
(the data URL, ``json.dumps`` of it, encoding, two hashes, the journal's copy), that held the
loop for seconds in a burst, while MiniMax's callback challenge, which arrives *during* the
create call and must be echoed within 3 s, waited behind it.

Here the JSON is dumped with a short placeholder for each inline image, and the body is
assembled as bytes around the image's base64 text, encoded in slices of 1 MiB and hashed as
it is built, in a worker thread. A slice holds the GIL for about a millisecond (hashing and
the final join let go of it), so the loop keeps getting its turn. The body is the only copy
an in-flight submission keeps; the journal gets each inline image's size and digest.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import attrs
from yarl import URL

from ._models import VideoRequest
from ._preflight import check_request
from ._wire import request_payload

__all__ = ["CallbackHost", "PreparedSubmission", "check_submission", "prepare_submission"]

_SLICE = 768 * 1024  # raw bytes per base64 slice: 1 MiB of text, about 1 ms of the GIL
_TEXT_SLICE = 1024 * 1024  # characters per slice of a data URL given as text
# One thread prepares every submission that reads or encodes an image, one at a time. More
# would not send faster (the upload is the bottleneck) and, on a small machine, would take
# CPU time from the event loop's own thread, which must answer MiniMax's challenges; the
# submissions waiting their turn hold nothing but their request.
_LANE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minimax-s2v-prepare")


class CallbackHost(Protocol):
    """What a submission needs of a callback receiver: its public URL and per-nonce URLs."""

    @property
    def public_url(self) -> URL:
        """Where MiniMax reaches the receiver."""
        ...

    def callback_url(self, nonce: str) -> URL:
        """The callback URL of ``nonce``."""
        ...


@attrs.frozen
class PreparedSubmission:
    """A submission ready to send.

    Attributes:
        body: the exact bytes POSTed (retries send the same ones).
        fingerprint: a digest of ``body``, to find the submission again in a journal.
        journal_payload: the request as journaled: inline images replaced by their size and
            digest.
        callback_shown: what an error may show of where callbacks go: the receiver's
            ``public_url`` or the origin of the request's own callback URL, never the part
            that holds a nonce or a token; ``None`` without callbacks.
    """

    body: bytes = attrs.field(repr=False)
    fingerprint: str
    journal_payload: dict[str, Any] = attrs.field(repr=False)
    callback_shown: str | None = None


async def check_submission(request: VideoRequest) -> None:
    """Check ``request`` by every documented rule, reading local files off the event loop.

    Raises:
        InvalidRequestError: listing every problem found (nothing was sent).
    """
    if _all_remote(request):
        check_request(request)  # nothing to read or decode: no thread needed
    else:
        await asyncio.get_running_loop().run_in_executor(_LANE, check_request, request)


async def prepare_submission(
    request: VideoRequest, receiver: CallbackHost | None, nonce: str
) -> PreparedSubmission:
    """Build the body of ``request``, with the callback URL of ``nonce`` when ``receiver``.

    A request with inline images (local files, data URLs) is built in a worker thread; local
    files are read and checked again there, so that what is sent is what passed the checks.

    Raises:
        InvalidRequestError: a local file no longer passes the checks (nothing was sent).
    """
    callback_url = None if receiver is None else str(receiver.callback_url(nonce))
    if receiver is not None:
        shown: str | None = str(receiver.public_url)
    elif request.callback_url is not None:
        shown = str(URL(request.callback_url).origin())
    else:
        shown = None
    if _all_remote(request):
        return build_submission(request, callback_url, shown)  # small: quicker on the loop
    return await asyncio.get_running_loop().run_in_executor(
        _LANE, build_submission, request, callback_url, shown
    )


@attrs.frozen
class _Inline:
    """An inline image: the data URL's header and the base64 text after it, in slices."""

    header: str
    raw: bytes | None = attrs.field(repr=False)  # a local file's bytes, encoded slice by slice
    text: str | None = attrs.field(repr=False)  # or a data URL's base64 text, given as is

    def slices(self) -> Iterator[bytes]:
        """The base64 text, 1 MiB at a time (no escaping needed: base64's alphabet is JSON-safe)."""
        if self.raw is not None:
            view = memoryview(self.raw)
            for start in range(0, len(view), _SLICE):
                yield binascii.b2a_base64(view[start : start + _SLICE], newline=False)
        elif self.text is not None:
            text = self.text
            for start in range(0, len(text), _TEXT_SLICE):
                yield text[start : start + _TEXT_SLICE].encode("ascii")


def build_submission(
    request: VideoRequest, callback_url: str | None, callback_shown: str | None = None
) -> PreparedSubmission:
    """Check ``request`` and build its body, fingerprint and journal entry (blocking).

    The body equals ``json.dumps(payload, separators=(",", ":")).encode()`` of the request
    with its local images as data URLs, byte for byte; it is never held as one string.

    Raises:
        InvalidRequestError: the request breaks a documented rule (nothing was sent).
    """
    mark = f"minimax-s2v-inline-{secrets.token_hex(8)}-"  # in no user's text
    inline: dict[str, _Inline] = {}

    def keep(_: str, mime: str, data: bytes) -> str:
        placeholder = f"{mark}{len(inline)}"
        inline[placeholder] = _Inline(f"data:{mime};base64,", data, None)
        return placeholder

    payload = request_payload(check_request(request, keep))
    if callback_url is not None:
        payload["callback_url"] = callback_url
    journal = _mark_inline(payload, mark, inline)
    text = json.dumps(payload, separators=(",", ":"))
    hasher = hashlib.sha256()
    parts: list[bytes] = []

    def add(part: bytes) -> None:
        parts.append(part)
        hasher.update(part)  # lets go of the GIL for large parts

    position = 0
    summaries: dict[str, str] = {}
    for start, placeholder in sorted((text.index(p), p) for p in inline):
        add(text[position:start].encode())
        summaries[placeholder] = _add_inline(inline[placeholder], add)
        position = start + len(placeholder)
    add(text[position:].encode())
    body = b"".join(parts)  # one copy, and bytes.join lets go of the GIL for a large one
    return PreparedSubmission(
        body=body,
        fingerprint=hasher.hexdigest()[:32],
        journal_payload=_journal(journal, summaries),
        callback_shown=callback_shown,
    )


def _add_inline(image: _Inline, add: Callable[[bytes], None]) -> str:
    """Add an image's JSON text to the body; returns its journal summary."""
    header = image.header
    digest = hashlib.sha256(header.encode())
    add(json.dumps(header)[1:-1].encode())  # the header as JSON escapes it (a data URL's may)
    length = len(header)
    for part in image.slices():
        add(part)
        digest.update(part)
        length += len(part)
    return f"{header[:-1]},<{length} characters, sha256 {digest.hexdigest()[:16]}>"


def _mark_inline(payload: dict[str, Any], mark: str, inline: dict[str, _Inline]) -> dict[str, Any]:
    """Put placeholders for data URLs given as text too; returns the payload to journal.

    The journal's copy shares everything but the image lists, which hold the placeholders
    until :func:`_journal` puts each image's summary in.
    """
    subjects = []
    for subject in payload.get("subject_reference", []):
        images = subject.get("image", [])
        for index, image in enumerate(images):
            if image[:5].lower() == "data:":
                header, _, encoded = image.partition(",")
                placeholder = f"{mark}{len(inline)}"
                inline[placeholder] = _Inline(f"{header},", None, encoded)
                images[index] = placeholder
        subjects.append({**subject, "image": list(images)})
    return {**payload, "subject_reference": subjects}


def _journal(payload: dict[str, Any], summaries: dict[str, str]) -> dict[str, Any]:
    for subject in payload.get("subject_reference", []):
        subject["image"] = [summaries.get(image, image) for image in subject["image"]]
    return payload


def _is_remote(image: str) -> bool:
    return image[:8].lower().startswith(("http://", "https://"))


def _all_remote(request: VideoRequest) -> bool:
    """Whether every image of ``request`` is a URL (no file to read, no data to decode)."""
    for subject in request.subject:
        for image in subject.image:
            if not _is_remote(image):
                return False
    return True
