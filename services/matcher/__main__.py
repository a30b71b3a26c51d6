"""`python -m services.matcher`: run one matcher replica (configured by FORDRING_* variables);
`python -m services.matcher outbox status|unpark|replay`: its outbox (services/common/outbox_admin.py)."""

from __future__ import annotations

from services.common.entry import service_main
from services.matcher.app import serve
from services.matcher.settings import MatcherSettings


def main() -> None:
    service_main(MatcherSettings, serve)


if __name__ == "__main__":
    main()
