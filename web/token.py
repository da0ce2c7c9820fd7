"""`python -m web.token USER_ID [--ttl SECONDS] [--config PATH]`: print a token for a user.

For operators and tests; signs with `[auth] secret` (or, in demo mode, the demo secret).
"""

import argparse
import sys

from protocol.tokens import mint_token
from settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.token", description=__doc__.splitlines()[0])
    parser.add_argument("user_id", type=int)
    parser.add_argument("--ttl", type=float, default=3600, help="seconds until the token expires (default 3600)")
    parser.add_argument("--config", help="configuration file (default: config.ini)")
    parser.add_argument("--demo", action="store_true", default=None, help="use the demo secret")
    args = parser.parse_args(argv)
    if args.user_id < 1:
        parser.error("user_id must be a positive integer")
    try:
        settings = load_settings(args.config, demo=args.demo)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    print(mint_token(settings.auth.secret, args.user_id, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
