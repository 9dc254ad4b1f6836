"""The ``playloop`` command's entry point: ``similar`` and ``search`` start light.

They need the vector index only, so they run from ``playloop.cli_learn`` without importing
the rest of the CLI (the runtime, the HTTP client, NATS): ``playloop similar`` answers from
a cold start in about the time the embedding model takes to load. Every other command (and
``--help``) goes through ``playloop.cli``.
"""

from __future__ import annotations

import sys

LIGHT = ("similar", "search")


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] in LIGHT and not any(a in ("--help", "-h") for a in args[1:]):
        from playloop.cli_learn import light_app

        light_app(args=args, prog_name="playloop")
        return
    from playloop.cli import main as full

    full()


if __name__ == "__main__":
    main()
