"""`python -m services.portal`: run one portal replica (configured by FORDRING_* variables)."""

from __future__ import annotations

from services.common.entry import service_main
from services.portal.app import serve
from services.portal.settings import PortalSettings


def main() -> None:
    service_main(PortalSettings, serve)


if __name__ == "__main__":
    main()
