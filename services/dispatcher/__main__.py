"""`python -m services.dispatcher`: run one dispatcher replica (configured by FORDRING_* variables);
`python -m services.dispatcher outbox status|unpark|replay`: its outbox (services/common/outbox_admin.py)."""

from __future__ import annotations

from services.common.entry import service_main
from services.dispatcher.app import serve
from services.dispatcher.settings import DispatcherSettings


def main() -> None:
    service_main(DispatcherSettings, serve)


if __name__ == "__main__":
    main()
