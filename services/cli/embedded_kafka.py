"""The embedded Kafka-protocol broker (Tansu, in memory) as `fordring up` and the tests run it.

    python -m services.cli.embedded_kafka TANSU_BINARY broker --listener-url ... (Tansu's arguments)

Tansu's memory engine loses its log when it stops, yet by default it reports the same cluster id
(`tansu_cluster`) after every start, so clients cannot tell an empty broker from the one they
wrote to. This starts it (exec: same pid, signals reach Tansu directly) with a cluster id of its
own for every start: services see the id change and publish their outbox's replay window again
(services/common/relay.py) and read their subscriptions from the beginning (services/common/bus.py).
"""

from __future__ import annotations

import os
import sys
import uuid


def main() -> None:
    binary, *arguments = sys.argv[1:]
    cluster_id = f"fordring-embedded-{uuid.uuid4().hex[:12]}"
    os.execv(binary, [binary, *arguments, "--cluster-id", cluster_id])  # noqa: S606 - our own argv


if __name__ == "__main__":
    main()
