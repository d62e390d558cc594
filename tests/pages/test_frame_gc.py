"""pages.ui.frame.freeze_loaded_code: the objects of newly loaded modules leave the collector's full walks
once per burst of imports, not on every page run."""
import gc
import sys

from pages.ui import frame


def test_a_burst_of_imports_is_frozen_once(monkeypatch):
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(len(sys.modules)))
    monkeypatch.setattr(gc, "collect", lambda *a: 0)
    monkeypatch.setitem(frame._FROZEN, "modules", len(sys.modules))
    frame.freeze_loaded_code()
    assert calls == []  # nothing new loaded since the last freeze
    fake = {f"lab_test_fake_module_{i}": object() for i in range(frame._FREEZE_AFTER)}
    monkeypatch.setattr(sys, "modules", {**sys.modules, **fake})
    frame.freeze_loaded_code()
    frame.freeze_loaded_code()
    assert calls == [len(sys.modules)]  # frozen once after the burst, not again on the next run


def test_the_app_freezes_after_its_runs(app, monkeypatch):
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(len(sys.modules)))
    monkeypatch.setitem(frame._FROZEN, "modules", 0)  # as in a server that has not frozen yet
    app("pages/train.py")
    assert calls and frame._FROZEN["modules"] == calls[-1]  # app.py froze after a run, with the modules then
