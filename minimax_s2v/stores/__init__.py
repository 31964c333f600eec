"""Where the client keeps what it must not forget: submissions, status updates, results.

- :class:`MemoryStore` (the default) keeps everything in this process.
- :class:`SQLiteStore` keeps an embedded, durable journal: with it the receiver
  acknowledges an update only once it is on disk, and :meth:`Client.resume` picks up every
  unfinished task after a restart.
- :class:`~minimax_s2v.stores.redis.RedisStore` (``pip install minimax-s2v[redis]``) shares
  task state between the replicas of a service and fans updates out with pub/sub.

A store journals each submission *before* it is sent, so that a crash between sending and
hearing back leaves a trace: such a submission is reported as uncertain, never resent.
"""

from __future__ import annotations

from ._base import SharedTaskStore, StoredSubmission, StoredTask, SubmissionState, TaskStore
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "MemoryStore",
    "SQLiteStore",
    "SharedTaskStore",
    "StoredSubmission",
    "StoredTask",
    "SubmissionState",
    "TaskStore",
]
