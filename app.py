"""PyTorch Lab: the frame. Page config, navigation with sections, shared sidebar, run."""
import streamlit as st

from pages.ui import language_and_seed, navigation_pages, sidebar_environment

st.set_page_config(page_title="PyTorch Lab", page_icon=":material/science:", layout="wide")
language_and_seed()
page = st.navigation(navigation_pages())
sidebar_environment()
page.run()
