"""The UI server's ASGI app: the Streamlit app (streamlit_app.py) plus the admin-session cookie routes.

`python -m core.ui_server run ui_app.py` (what `python -m core serve` runs) serves both on one
port; Streamlit finds `app` here and runs it under uvicorn. `streamlit run streamlit_app.py`
still works, without the routes: admins then stay signed in only within one browser tab.
"""
import streamlit as st

from core.admin_web import routes

app = st.App("streamlit_app.py", routes=routes())
