"""`python -m web [--config PATH] [--demo]`: run the service (both ports, one process)."""

from gevent import monkey

monkey.patch_all()  # before anything else imports socket, threading or ssl

import argparse  # noqa: E402
import sys  # noqa: E402

from settings import ConfigError, load_settings  # noqa: E402
from web.logs import configure_logging, log_configuration  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web", description="Real-time chat and notification service.")
    parser.add_argument("--config", help="configuration file (default: config.ini in the working directory)")
    parser.add_argument(
        "--demo", action="store_true", default=None, help="seed demo users and serve demo tokens to local pages"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, demo=args.demo)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level, settings.log.format)
    log_configuration(settings.redacted())

    from storage import StorageUnavailable
    from web.service import Service, StartupError

    try:
        Service(settings).run()
    except StorageUnavailable as error:
        print(f"cannot start: database unavailable: {error}", file=sys.stderr)
        return 1
    except StartupError as error:
        print(f"cannot start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
