"""Zoom cloud recordings: from Zoom's API and webhooks to meetings in the archive.

One module per job (the arrows run one way, top to bottom):

    records   Zoom's recording JSON → typed records (pure: no network, no database)
    client    the Server-to-Server OAuth HTTP client and the daily request cap
    source    `ZoomSource`, the MediaSource the pipeline fetches transcripts and audio from
    meetings  a meeting into the archive: its item and ingest job (one path for all three ways in)
    events    webhook signatures and events → meetings (verify, parse, apply once)
    receiver  the ASGI app Zoom posts its webhooks to
    sync      the periodic listing that catches what webhooks missed, and month back-fills
    admin     what the admin's Zoom page calls (check, publish, upload, playback)

The CLI commands stay in core/cli/ (zoom.py, webhooks.py) and the page in pages/admin_zoom.py.
"""
