"""The embedded MongoDB-protocol server (SecantusDB) as `fordring up` and the tests run it.

    python -m services.cli.embedded_mongo --host 127.0.0.1 --port 27018 --storage-path .fordring/mongo

The same command line as `python -m secantus`, with one difference: a transaction left open by a
client that died (a ledger killed with SIGKILL mid-commit) is aborted after
FORDRING_EMBEDDED_TXN_LIFETIME seconds (default 5) instead of 60. Its locks, on the invoice
counter among others, would otherwise stall every IssueInvoice for a minute. Fordring's
transactions last milliseconds; MongoDB's equivalent setting is transactionLifetimeLimitSeconds.
"""

from __future__ import annotations

import functools
import os
import sys

from secantus import cli

DEFAULT_LIFETIME_SECONDS = 5.0


def main() -> int:
    lifetime = float(os.environ.get("FORDRING_EMBEDDED_TXN_LIFETIME", DEFAULT_LIFETIME_SECONDS))
    # secantus's command line has no flag for it; its server class takes it as an argument.
    cli.SecantusDBServer = functools.partial(cli.SecantusDBServer, transaction_lifetime_seconds=lifetime)
    return int(cli.main(sys.argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
