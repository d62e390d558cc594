"""PyTorch Lab: the frame. Page config, navigation with sections, shared sidebar, run.

``streamlit run app.py`` finds the ``st.App`` below (Streamlit reads this file for it before it
starts) and serves the lab with the lab's own HTTP routes next to Streamlit's: the live-charts feed
(pages.ui.live_http). Streamlit then runs this same file as the lab's script, as ``__main__``.
"""
import streamlit as st

if __name__ == "__main__":  # Streamlit running the script (a session's page view, or AppTest)
    from pages.ui.frame import framed, freeze_loaded_code, language_and_seed, navigation_pages, sidebar_environment
    from pages.ui.share import restore_shared_state, share_control

    st.set_page_config(page_title="PyTorch Lab", page_icon=":material/science:", layout="wide")
    restore_shared_state()
    language_and_seed()
    page = st.navigation(navigation_pages())
    try:
        with framed():  # the page's frame() checks that app.py runs it
            page.run()
    finally:  # also after a page's st.stop(): the sidebar is complete on every page
        share_control()
        sidebar_environment()
        freeze_loaded_code()  # a run that loaded the engine: its objects out of the collector's walks
else:  # imported by the server (uvicorn "app:app"): the ASGI app, Streamlit's routes plus the lab's
    from starlette.middleware import Middleware

    from pages.ui.live_http import ROUTES, FeedLookups

    app = st.App(__file__, routes=ROUTES, middleware=[Middleware(FeedLookups)])
