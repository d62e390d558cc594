"""Streamlit helpers shared by app.py and the pages (a sub-package, so Streamlit never treats them as pages).

- ``text``: ``tr`` (UI text in the page's language), ``plain`` (user text shown literally)
- ``frame``: the page list, navigation, ``frame()`` at the top of every page, the sidebar
- ``state``: the run store, the global seed, extras for the share link
- ``widgets``: ``url_choice`` (choices kept in the URL), code panels
- ``share``: applying and building share links
- ``model_state``, ``train_views``, ``tensor_view``: the pieces of the Builder, Train and Tensors pages
"""
