"""PyTorch Lab: the frame. Page config, navigation with sections, shared sidebar, run."""
import streamlit as st

from pages.ui.frame import framed, language_and_seed, navigation_pages, sidebar_environment
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
