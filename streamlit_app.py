"""Navigation only: which pages exist and who may see them.

Viewers see Search. Admin pages appear once an admin has signed in (pages/_auth.py);
each admin page also checks the sign-in itself, so a URL typed by hand is refused too.
"""
import streamlit as st

from core.config import ConfigError, get_settings

st.set_page_config(page_title="Chaffee Search", page_icon="🔎", layout="wide")

try:
    get_settings()
except ConfigError as exc:  # a bad setting: say which, never a traceback
    st.error(str(exc))
    st.stop()

from pages._ui import run_page  # noqa: E402


def _app() -> None:
    search_page = st.Page("pages/search.py", title="Search", icon=":material/search:", default=True)
    pages: dict[str, list] = {"": [search_page]}

    try:
        from pages._auth import admin_pages  # (written with the admin console)
    except ImportError:
        admin_pages = None

    if admin_pages is not None:
        pages.update(admin_pages())

    st.navigation(pages).run()


# Every page, viewer and admin: a database restart reads "briefly unavailable — retrying".
run_page(_app)
