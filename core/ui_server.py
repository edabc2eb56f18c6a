"""Starts the Streamlit UI: `python -m core.ui_server run streamlit_app.py [streamlit options]`.

The arguments are Streamlit's own (those of `streamlit …`); `python -m core serve` and the browser
tests start the UI this way. `streamlit run streamlit_app.py` still works, with the quirk below.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def disable_v1_pages_folder() -> bool:
    """Tell Streamlit that pages/ holds page scripts for st.navigation, not a v1 pages folder.

    Returns False (after one warning) when this Streamlit has no such switch; the UI still starts.
    """
    # Streamlit decides once per process from `pages/` existing that the app is a v1 multipage app,
    # and keeps serving v1 pages until a script run reaches st.navigation: a deep link such as
    # /admin-costs opened first in a fresh server is answered "Page not found". We never use v1 pages.
    try:  # a Streamlit internal, not API: other Streamlit versions may not have it
        from streamlit.runtime.pages_manager import PagesManager

        has_flag = hasattr(PagesManager, "uses_pages_directory")
    except ImportError:
        has_flag = False
    if not has_flag:
        log.warning(
            "this Streamlit has no PagesManager.uses_pages_directory: the first deep link after a "
            "server start may show 'Page not found' until the home page has been opened once"
        )
        return False
    PagesManager.uses_pages_directory = False
    return True


def main() -> None:
    disable_v1_pages_folder()
    from streamlit.web import cli

    # As `python -m streamlit` does: Streamlit reads its arguments from sys.argv.
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
