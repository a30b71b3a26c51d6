"""`python -m services.renderer`: run one renderer replica (configured by FORDRING_* variables);
`python -m services.renderer outbox status|unpark|replay`: its outbox (services/common/outbox_admin.py)."""

from __future__ import annotations

from services.common.entry import service_main
from services.renderer.app import serve
from services.renderer.settings import RendererSettings


def main() -> None:
    service_main(RendererSettings, serve)


if __name__ == "__main__":
    main()
