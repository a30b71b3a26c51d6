"""`python -m services.dunning`: run one dunning replica (configured by FORDRING_* variables);
`python -m services.dunning outbox status|unpark|replay`: its outbox (services/common/outbox_admin.py)."""

from __future__ import annotations

from services.common.entry import service_main
from services.dunning.app import serve
from services.dunning.settings import DunningSettings


def main() -> None:
    service_main(DunningSettings, serve)


if __name__ == "__main__":
    main()
