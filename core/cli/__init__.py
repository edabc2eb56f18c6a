"""`python -m core …` sub-commands. Each module here has `register(subparsers)`.

Add a command by adding a module and naming it in COMMAND_MODULES; no other file changes.
"""
COMMAND_MODULES = (
    "core.cli.ingest",  # ingest URL|FILE, sync-channel
    "core.cli.search",  # search "query"
    "core.cli.serve",  # serve: UI + scheduler + webhook receiver
    "core.cli.admin",  # hash-password
    "core.cli.demo",  # seed-demo: realistic data for the admin console
    "core.cli.webhooks",  # webhooks: the Zoom webhook receiver
    "core.cli.zoom",  # zoom-check, zoom-sync
    "core.cli.backfill",  # backfill status|pause|resume|retry-dead, worker
    "core.cli.reembed",  # reembed: chunks of another model into the configured one
    "core.cli.diarize",  # diarize: speaker turns (the optional speakers extra)
    "core.cli.backup",  # backup, restore FILE
)
