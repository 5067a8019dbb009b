"""tally: exact counters and time-bucketed rollups inside PostgreSQL.

The logic lives in SQL (schema ``tally``); this package is a thin psycopg 3
client over it plus the ``tally`` command line.
"""

from tally.client import Bucket, KeyValue, Tally

__all__ = ["Bucket", "KeyValue", "Tally"]
