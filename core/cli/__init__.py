"""`python -m core …` sub-commands. Each module here has `register(subparsers)`.

Add a command by adding a module and naming its commands in COMMANDS; no other file changes.
A run imports only the module of the command it runs (the others pull in the search stack,
the transcription engines or the web server: over a second of imports on two cores).
"""
COMMANDS: dict[str, str] = {
    "ingest": "core.cli.ingest",  # ingest URL|FILE
    "sync-channel": "core.cli.ingest",  # list the channel, queue new videos
    "search": "core.cli.search",  # search "query"
    "serve": "core.cli.serve",  # UI + scheduler + webhook receiver
    "hash-password": "core.cli.admin",
    "seed-demo": "core.cli.demo",  # realistic data for the admin console
    "webhooks": "core.cli.webhooks",  # the Zoom webhook receiver
    "zoom-check": "core.cli.zoom",
    "zoom-sync": "core.cli.zoom",
    "backfill": "core.cli.backfill",  # backfill status|pause|resume|retry-dead|dead
    "worker": "core.cli.backfill",  # a backfill worker alone
    "reembed": "core.cli.reembed",  # chunks of another model into the configured one
    "diarize": "core.cli.diarize",  # speaker turns (the optional speakers extra)
    "backup": "core.cli.backup",
    "restore": "core.cli.backup",
}
