"""A submission made ready to send, off the event loop: its exact body, fingerprint and journal.

A local face of 14.5 MB becomes a body of about 19 MB. Built on the event loop as one string
(the data URL, ``json.dumps`` of it, encoding, two hashes, the journal's copy), that held the
loop for seconds in a burst, while MiniMax's callback challenge, which arrives *during* the
create call and must be echoed within 3 s, waited behind it.

Here the JSON is dumped with a short placeholder for each inline image, and the body is
assembled as bytes around the image's base64 text, one submission's image at a time per
event loop: the file is read in a worker thread; the base64 text is encoded on the loop, a
1 MiB slice (about half a millisecond) per turn; hashing and the final join, which let go of
the GIL, run in the worker thread again. So no other thread holds the GIL for more than a
moment, and the loop never waits long for it or for a CPU. The body is the only copy an
in-flight submission keeps; the journal gets each inline image's size and digest. Once sent
for the last time, a large body is unmapped by the worker thread too (see
:meth:`PreparedSubmission.release`): freed as ``bytes`` on the loop, it held it for 5-20 ms.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import mmap
import os
import secrets
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import attrs
from yarl import URL

from ._errors import APIError, ConnectError, MiniMaxError, RateLimitError
from ._models import AnyRequest, H3Request, SubjectReference
from ._preflight import check_any
from ._redaction import shown_url
from ._wire import (
    compact_json,
    h3_request_payload,
    request_payload,
    source_kind,
    with_media_urls,
)

T = TypeVar("T")

__all__ = [
    "CallbackHost",
    "PreparedSubmission",
    "check_submission",
    "created_nothing",
    "in_band_rejection",
    "prepare_submission",
    "resend_is_safe",
]

_SLICE = 768 * 1024  # raw bytes per base64 slice: 1 MiB of text, about 0.5 ms of the loop
_TEXT_SLICE = 1024 * 1024  # characters per slice of a data URL given as text
_MAPPED_BODY = 1024 * 1024  # a larger body built off the loop goes in a memory map
# One lane per event loop: the images of concurrent submissions are encoded one after the
# other, so that a turn of the loop holds one slice, not one slice per submission.
_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
# One thread reads, checks, hashes and joins for every submission: its work lets go of the
# GIL, but several such threads at once take turns with it, and the event loop's thread,
# which takes it back after every socket call, could wait up to the interpreter's switch
# interval (5 ms) each time. Reading and hashing are not what limits the upload.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minimax-s2v-prepare")


async def _in_worker(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_WORKER, function, *args)


# -- whether a failed submission created a task ----------------------------------------------


def in_band_rejection(error: BaseException) -> bool:
    """Whether ``error`` is a complete answer refusing the call (so nothing was created).

    That is an in-band ``base_resp`` code, or a V2 error envelope (it carries a request id).
    """
    return isinstance(error, APIError) and (error.code is not None or error.request_id is not None)


def created_nothing(error: BaseException) -> bool:
    """Whether a failed submission certainly created no task: refused, or answered "no".

    A connection that was never made, a rate limit (MiniMax counts before it creates), or
    a complete answer refusing the call. Anything else (a timeout, a broken exchange, an
    answer without a readable task id, a refusal that names a task id all the same) may
    have created one: it is uncertain, never sent again
    (:class:`~minimax_s2v.SubmissionUncertainError`).
    """
    if isinstance(error, APIError) and error.task_id is not None:
        return False
    return isinstance(error, ConnectError | RateLimitError) or in_band_rejection(error)


def resend_is_safe(error: BaseException) -> bool:
    """Whether a submission may be sent again (the retry policy has the last word).

    Only when the failed one created nothing, and a retry may succeed.
    """
    return created_nothing(error) and isinstance(error, MiniMaxError) and error.retryable


# -- preparing a submission -------------------------------------------------------------------


class CallbackHost(Protocol):
    """What a submission needs of a callback receiver: its public URL and per-nonce URLs."""

    @property
    def public_url(self) -> URL | None:
        """Where MiniMax reaches the receiver (``None`` until it is known)."""
        ...

    def callback_url(self, nonce: str) -> URL:
        """The callback URL of ``nonce``."""
        ...


@attrs.frozen
class PreparedSubmission:
    """A submission ready to send.

    Attributes:
        body: the exact bytes POSTed (retries send the same ones): ``bytes``, or for a
            large body built off the loop a read-only map of them (see :meth:`release`).
        fingerprint: a digest of ``body``, to find the submission again in a journal.
        journal_payload: the request as journaled: inline images replaced by their size and
            digest.
        callback_shown: what an error may show of where callbacks go: the receiver's
            ``public_url`` or the origin of the request's own callback URL, never the part
            that holds a nonce or a token; ``None`` without callbacks.
    """

    body: bytes | mmap.mmap = attrs.field(repr=False)
    fingerprint: str
    journal_payload: dict[str, Any] = attrs.field(repr=False)
    callback_shown: str | None = None

    def release(self) -> None:
        """Let go of the body once it will not be sent again.

        A large body built off the loop is a map of a memory file, unmapped here by the
        worker thread: freeing 19 MB of ``bytes`` holds the GIL while the kernel takes the
        pages back (5-20 ms each, several at once at the end of a burst), unmapping does
        not. The body must not be used afterwards.
        """
        if isinstance(self.body, mmap.mmap):
            _unmap_soon(self.body, 0)


# When to try again to unmap a body still in use when released (a cancelled upload that has
# not unwound yet), in seconds after the previous try; past the last, it is unmapped when
# collected.
_UNMAP_RETRIES = (0.05, 0.5, 5.0, 60.0)


def _unmap_soon(mapping: mmap.mmap, tries: int) -> None:
    """Unmap ``mapping`` in the worker thread; while it is still in use, again later."""
    try:
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(_WORKER, _unmap, mapping)
    except RuntimeError:  # no loop, or the interpreter is shutting down: here, then
        _unmap(mapping)
        return

    def again(unmapped: asyncio.Future[bool]) -> None:
        if unmapped.cancelled() or unmapped.exception() is not None or unmapped.result():
            return
        if tries < len(_UNMAP_RETRIES):
            loop.call_later(_UNMAP_RETRIES[tries], _unmap_soon, mapping, tries + 1)

    done.add_done_callback(again)


def _unmap(mapping: mmap.mmap) -> bool:
    """Unmap ``mapping`` (``mmap.close`` lets go of the GIL); ``False`` while it is in use."""
    try:
        mapping.close()
    except BufferError:  # a view of it is still alive
        return False
    return True


async def check_submission(request: AnyRequest) -> None:
    """Check ``request`` by every documented rule, reading local files off the event loop.

    Raises:
        InvalidRequestError: listing every problem found (nothing was sent).
    """
    if _all_remote(request):
        check_any(request)  # nothing to read or decode: no thread needed
    else:
        await _in_worker(check_any, request)


async def prepare_submission(
    request: AnyRequest, receiver: CallbackHost | None, nonce: str
) -> PreparedSubmission:
    """Build the body of ``request``, with the callback URL of ``nonce`` when ``receiver``.

    ``request`` has passed :func:`check_submission`. One whose files are all URLs is built
    at once (:func:`remote_submission`). A request with inline images (local files, data
    URLs) waits for its turn in this event loop's lane, has its files read (and checked
    again, so that what is sent is what passed the checks) in a worker thread, is encoded a
    slice per turn of the loop, and is hashed and joined in a worker thread.

    Raises:
        InvalidRequestError: a local file no longer passes the checks (nothing was sent).
    """
    callback_url = None if receiver is None else str(receiver.callback_url(nonce))
    if receiver is not None:
        shown: str | None = shown_url(str(receiver.public_url))  # known: callback_url() needs it
    elif request.callback_url is not None:
        shown = shown_url(URL(request.callback_url).origin())
    else:
        shown = None
    if _all_remote(request):
        return remote_submission(request, callback_url, shown)  # small: quicker on the loop
    async with _lane():
        checked = await _in_worker(_check, request, callback_url)
        pieces = []
        for piece in _pieces(checked):
            pieces.append(piece)
            if piece.image is not None:
                await asyncio.sleep(0)  # one slice per turn of the loop
        body, fingerprint, journal = await _in_worker(_finish, checked, pieces, True)
    return PreparedSubmission(body, fingerprint, journal, shown)


def _lane() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lane = _LANES.get(loop)
    if lane is None:
        lane = _LANES[loop] = asyncio.Lock()
    return lane


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


@attrs.frozen
class _Checked:
    """A checked request as JSON text with placeholders, its inline images, its journal."""

    text: str
    inline: dict[str, _Inline] = attrs.field(repr=False)
    journal: dict[str, Any] = attrs.field(repr=False)


def build_submission(
    request: AnyRequest, callback_url: str | None, callback_shown: str | None = None
) -> PreparedSubmission:
    """Check ``request`` and build its body, fingerprint and journal entry, all at once.

    The body equals ``json.dumps(payload, separators=(",", ":")).encode()`` of the request
    with its local images as data URLs, byte for byte; it is never held as one string.
    Blocking: :func:`prepare_submission` does the same without holding the event loop.

    Raises:
        InvalidRequestError: the request breaks a documented rule (nothing was sent).
    """
    checked = _check(request, callback_url)
    body, fingerprint, journal = _finish(checked, list(_pieces(checked)))
    return PreparedSubmission(body, fingerprint, journal, callback_shown)


def remote_submission(
    request: AnyRequest, callback_url: str | None, callback_shown: str | None = None
) -> PreparedSubmission:
    """:func:`build_submission` of a checked request whose files are all URLs, quicker.

    Nothing is inline, so the body is the payload's JSON and the journal is the payload;
    the request is not checked again (it is immutable, and it has no file that could
    change since its check).
    """
    payload = _payload(request, callback_url)
    body = compact_json(payload).encode()
    fingerprint = hashlib.sha256(body).hexdigest()[:32]
    return PreparedSubmission(body, fingerprint, payload, callback_shown)


def _payload(request: AnyRequest, callback_url: str | None) -> dict[str, Any]:
    """The request's wire payload, with the callback URL when there is one."""
    if isinstance(request, H3Request):
        payload = h3_request_payload(request)
    else:
        payload = request_payload(request)
    if callback_url is not None:
        payload["callback_url"] = callback_url
    return payload


def _check(request: AnyRequest, callback_url: str | None) -> _Checked:
    """Check ``request``, reading its local files (blocking), and dump its JSON text."""
    mark = f"minimax-s2v-inline-{secrets.token_hex(8)}-"  # in no user's text
    inline: dict[str, _Inline] = {}

    def keep(_: str, mime: str, data: bytes) -> str:
        placeholder = f"{mark}{len(inline)}"
        inline[placeholder] = _Inline(f"data:{mime};base64,", data, None)
        return placeholder

    def placed(source: str) -> str:  # a data URL given as text gets a placeholder too
        if source_kind(source) != "data":
            return source
        header, _, encoded = source.partition(",")
        placeholder = f"{mark}{len(inline)}"
        inline[placeholder] = _Inline(f"{header},", None, encoded)
        return placeholder

    payload = _payload(check_any(request, keep), callback_url)
    # The journal keeps the placeholders until _finish puts each image's summary in.
    payload = with_media_urls(payload, placed)
    return _Checked(compact_json(payload), inline, payload)


@attrs.frozen
class _Piece:
    """A piece of the body: JSON text, or part of an image's data URL (``image`` names it)."""

    data: bytes = attrs.field(repr=False)
    image: str | None = None
    raw_header: str | None = None  # the data URL's header unescaped, for the journal's digest


def _pieces(checked: _Checked) -> Iterator[_Piece]:
    """The body in order, encoding each image's base64 text a slice at a time."""
    text = checked.text
    position = 0
    for start, placeholder in sorted((text.index(p), p) for p in checked.inline):
        yield _Piece(text[position:start].encode())
        image = checked.inline[placeholder]
        # The header as JSON escapes it (a data URL given as text may need it).
        yield _Piece(json.dumps(image.header)[1:-1].encode(), placeholder, image.header)
        for part in image.slices():
            yield _Piece(part, placeholder)
        position = start + len(placeholder)
    yield _Piece(text[position:].encode())


def _finish(
    checked: _Checked, pieces: list[_Piece], mapped: bool = False
) -> tuple[bytes | mmap.mmap, str, dict[str, Any]]:
    """The body, its fingerprint and the journal entry (hashing and joining let go of the GIL).

    With ``mapped``, a body over ``_MAPPED_BODY`` bytes is assembled in a map of a memory
    file (see :meth:`PreparedSubmission.release`) instead of joined as ``bytes``.
    """
    hasher = hashlib.sha256()
    digests: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for piece in pieces:
        hasher.update(piece.data)
        if piece.image is None:
            continue
        if piece.raw_header is not None:
            digests[piece.image] = hashlib.sha256(piece.raw_header.encode())
            lengths[piece.image] = len(piece.raw_header)
        else:
            digests[piece.image].update(piece.data)
            lengths[piece.image] += len(piece.data)
    summaries = {
        placeholder: f"{checked.inline[placeholder].header[:-1]},<{lengths[placeholder]} "
        f"characters, sha256 {digest.hexdigest()[:16]}>"
        for placeholder, digest in digests.items()
    }
    body = _assemble([piece.data for piece in pieces], mapped)  # the one copy
    journal = with_media_urls(checked.journal, lambda url: summaries.get(url, url))
    return body, hasher.hexdigest()[:32], journal


def _assemble(chunks: list[bytes], mapped: bool) -> bytes | mmap.mmap:
    """The body from its pieces: ``bytes``, or with ``mapped`` a map of a memory file.

    Written with ``os.write`` and unmapped by ``mmap.close``, both of which let go of the
    GIL (copying into an anonymous map holds it while its pages fault in, and freeing
    ``bytes`` holds it while the kernel takes them back). Where memory files do not exist
    (not Linux), the body is ``bytes``.
    """
    size = sum(len(chunk) for chunk in chunks)
    if not mapped or size <= _MAPPED_BODY or not hasattr(os, "memfd_create"):
        return b"".join(chunks)
    try:
        fd = os.memfd_create("minimax-s2v-body", os.MFD_CLOEXEC)
        try:
            for chunk in chunks:
                rest = memoryview(chunk)
                while rest:
                    rest = rest[os.write(fd, rest) :]
            return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)  # the map keeps the memory until it is closed
    except OSError:  # no memory file to be had (limits, a sandbox): plain bytes then
        return b"".join(chunks)


def _all_remote(request: AnyRequest) -> bool:
    """Whether every file of ``request`` is a URL (no file to read, no data to decode)."""
    if isinstance(request, H3Request):
        sources = [
            s
            for s in (request.first_frame, request.last_frame, *request.references)
            if s is not None
        ]
        sources += [*request.reference_videos, *request.reference_audios]
        return all(isinstance(s, str) and source_kind(s) in ("url", "upload") for s in sources)
    for subject in request.subject:
        if not isinstance(subject, SubjectReference):
            return False  # the checks (in a worker) name what is wrong
        for image in subject.image:
            if not isinstance(image, str) or source_kind(image) != "url":
                return False
    return True
