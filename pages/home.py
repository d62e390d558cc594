"""Home: what the lab offers, one card per page, this machine's facts, the model zoo."""
import pandas as pd
import streamlit as st

from core.ml.zoo import zoo_rows
from pages.ui.frame import PAGES, env_rows, frame
from pages.ui.text import lang, tr

frame()
st.title(tr("home.title"))
st.write(tr("home.intro"))

st.subheader(tr("home.pages"))
cards = [p for p in PAGES if p[3] != "home"]
for row_start in range(0, len(cards), 3):
    cols = st.columns(3)
    for col, (_, page_key, script, url, icon) in zip(cols, cards[row_start:row_start + 3], strict=False):
        with col.container(border=True):
            st.markdown(f"#### {tr(page_key)}")
            st.write(tr(f"home.card.{url}"))
            st.page_link(script, label=tr("home.open", page=tr(page_key)), icon=icon)

st.subheader(tr("home.zoo"))
st.caption(tr("home.zoo_intro"))
zoo = pd.DataFrame(st.cache_data(zoo_rows)(lang()))  # titles in the page's language
zoo.columns = [tr(f"home.zoo.col.{c}") for c in ("preset", "example", "title", "input", "output", "params")]
st.dataframe(zoo, hide_index=True, width="stretch",
             column_config={tr("home.zoo.col.params"): st.column_config.NumberColumn(format="localized")})

st.subheader(tr("home.env"))
st.dataframe(pd.DataFrame(env_rows(markdown=False), columns=[tr("home.env.fact"), tr("home.env.value")]),
             hide_index=True, width="stretch")
