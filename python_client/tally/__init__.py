"""tally: exact counters and time-bucketed rollups inside PostgreSQL.

The logic lives in SQL (schema ``tally``); this package is a thin psycopg 3
client over it (``Tally``, and ``AsyncTally`` for asyncio) plus the ``tally``
command line.
"""

from tally._sql import Bucket, KeyValue
from tally.aio import AsyncTally
from tally.client import Tally
from tally.coalesce import GroupCommit, GroupCommitStats
from tally.routing import PartialBatchError, Routing

__all__ = [
    "AsyncTally",
    "Bucket",
    "GroupCommit",
    "GroupCommitStats",
    "KeyValue",
    "PartialBatchError",
    "Routing",
    "Tally",
]
