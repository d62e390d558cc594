"""Browser: the sidebar's share link reopens the same view in a fresh browser; a tampered one says so."""

import pytest
from playwright.sync_api import expect

from core.i18n import CATALOGUE
from core.ml.zoo import DEFAULT_PRESET, preset_spec
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
expect.set_options(timeout=30_000)  # a shared 2-core machine: a restored page may take a while to settle


def share_url(page, lang: str = "en") -> str:
    page.locator('[data-testid="stSidebar"]').get_by_text(CATALOGUE[lang]["share.button"]).click()
    code = page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"]')
    code.wait_for()
    url = code.inner_text().strip()
    page.keyboard.press("Escape")
    return url


def test_share_link_restores_model_language_seed_and_view(server, page, chromium):
    page.goto(server.url + "/builder?lang=简体中文&seed=7")
    wait_idle(page)
    page.locator(".st-key-bld_ex_M8 button").first.click()  # "M8 · NetWithResBlock": its graph view
    wait_idle(page)
    url = share_url(page, "zh")
    assert "/builder?" in url and "s=1." in url and "bld_tab=graph" in url and len(url) < 2000
    shot(page, "share-popover")
    other = chromium.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    fresh.goto(url)
    wait_idle(fresh)
    assert fresh.locator("h1").first.inner_text() == CATALOGUE["zh"]["builder.title"]
    assert fresh.get_by_text("NetWithResBlock").count() >= 1
    assert fresh.locator('[data-testid="stNumberInput"] input').first.input_value() == "7"
    fresh.wait_for_selector('[data-testid="stGraphVizChart"] svg')
    no_errors(fresh)
    other.close()


def test_tampered_link_shows_a_notice_not_a_crash(server, page):
    page.goto(server.url + "/builder?s=1.AAAAtampered&bld_tab=nonsense&seed=-3")
    wait_idle(page)
    warning = page.locator('[data-testid="stSidebar"] [data-testid="stAlertContentWarning"]')
    assert warning.count() == 1 and "ignored" in warning.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text(preset_spec(DEFAULT_PRESET).name).count() >= 1  # the default model


def test_tensors_page_link_restores_x_and_the_view(server, page, chromium):
    page.goto(server.url + "/tensors")
    wait_idle(page)
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.keyboard.type("zeros")
    page.keyboard.press("Enter")
    wait_idle(page)
    shape = page.get_by_role("textbox", name=EN["tensors.shape"])
    shape.fill("2, 5")
    shape.press("Enter")
    wait_idle(page)
    page.locator(".st-key-ten_create button").click()
    wait_idle(page)
    page.locator("[data-testid=stButtonGroup]").get_by_text(EN["tensors.view.expr"]).click()
    wait_idle(page)
    url = share_url(page)
    assert "ten_view=expr" in url and "s=1." in url
    other = chromium.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    fresh.goto(url)
    wait_idle(fresh)
    box = fresh.get_by_role("textbox", name=EN["tensors.expr"])
    box.fill("x.shape")
    box.press("Enter")
    wait_idle(fresh)
    assert "torch.Size([2, 5])" in fresh.locator('[data-testid="stMain"]').inner_text()
    no_errors(fresh)
    other.close()


def test_autograd_and_train_links_reopen_the_same_state(server, page, chromium):
    page.goto(server.url + "/autograd")
    wait_idle(page)
    box = page.get_by_role("textbox", name="f(x)")
    box.fill("sin(x) * x**2")
    box.press("Enter")
    wait_idle(page)
    url = share_url(page)
    assert "ag_f=" in url
    other = chromium.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    fresh.goto(url)
    wait_idle(fresh)
    field = fresh.get_by_role("textbox", name="f(x)")
    for _ in range(40):  # the bound value arrives with the first script run
        if field.input_value() == "sin(x) * x**2":
            break
        fresh.wait_for_timeout(250)
    assert field.input_value() == "sin(x) * x**2"
    # Train: a config from a link (carried in the share token)
    page.goto(server.url + "/train")
    wait_idle(page)
    page.locator(".st-key-tr_ex_R2 button").first.click()  # the example buttons are titled "R2 · ..."
    wait_idle(page)
    url = share_url(page)
    fresh.goto(url)
    wait_idle(fresh)
    inputs = fresh.locator('[data-testid="stSelectbox"] input')
    assert EN["option.dataset.synthetic"] in [inputs.nth(i).input_value() for i in range(inputs.count())]
    assert fresh.get_by_label(EN["train.epochs"]).input_value() == "100"
    no_errors(fresh)
    other.close()


# ---------------------------------------------------------------- Runs, Predict, Profiler, Export, Data
GONE = "r20000101-000000-abcdef"  # a run id no lab has


def chips(page, key: str):
    """The options a multiselect shows as selected (a locator: expect(...).to_have_text([...]) waits)."""
    return page.locator(f".st-key-{key} [aria-label='Selected values'] [data-tag] span[title]")


def selected(page, key: str):
    """The selected button of a segmented control."""
    return page.locator(f".st-key-{key} button[role=radio][aria-checked=true]")


def field(page, key: str):
    return page.locator(f".st-key-{key} input").first


def pick(page, key: str, text: str) -> None:
    """Choose an option of a selectbox or multiselect by typing a part of its label."""
    page.locator(f".st-key-{key} input").click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    wait_idle(page)


def open_fresh(chromium, url: str):
    """The link in a new browser context: no cookies, no session, nothing but the URL."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    fresh = context.new_page()
    fresh.set_default_timeout(30_000)
    fresh.goto(url)
    wait_idle(fresh)
    return context, fresh


@pytest.fixture(scope="module")
def mini_runs(server):
    """Two small MNIST-shaped runs (a then b, so b is the newest) in the server's lab home."""
    from core.runs.jobs import JobManager
    from core.training.config import TrainConfig

    home = server.home
    jobs = JobManager(home)
    base = TrainConfig(preset="cnn", limit_train=256, limit_test=64, batch_size=64, epochs=2, augment=False,
                       device="cpu")
    ids = {}
    for name, lr in (("mini a", 1e-3), ("mini b", 3e-3)):
        ids[name] = jobs.start(base.replace(lr=lr), name=name)
        assert jobs.wait(ids[name], timeout=300) == "completed", jobs.log_tail(ids[name])
    return ids


def test_runs_link_restores_selection_view_and_chart_settings(server, page, chromium, mini_runs):
    page.goto(server.url + "/runs")
    wait_idle(page)
    pick(page, "rn_sel", "mini b")  # picked first: b, then a
    pick(page, "rn_sel", "mini a")
    page.keyboard.press("Escape")
    page.locator(".st-key-rn_x").get_by_text(EN["runs.x.epoch"], exact=True).click()
    wait_idle(page)
    page.locator(".st-key-rn_log").get_by_text(EN["runs.log"]).click()
    wait_idle(page)
    url = share_url(page)
    assert "/runs?" in url and "rn_x=epoch" in url and "rn_log=true" in url and "s=1." in url
    context, fresh = open_fresh(chromium, url)
    expect(chips(fresh, "rn_sel")).to_have_text(["mini b (completed)", "mini a (completed)"])
    expect(selected(fresh, "rn_view")).to_have_text(EN["runs.view.compare"])
    expect(fresh.locator(".st-key-rn_x").get_by_role("radio", name=EN["runs.x.epoch"], exact=True)).to_be_checked()
    expect(field(fresh, "rn_log")).to_be_checked()
    fresh.wait_for_selector(".st-key-rn_chart .js-plotly-plot")
    no_errors(fresh)
    shot(fresh, "share-runs-restored")
    # The "open" view: the run picked last is the one opened.
    page.locator(".st-key-rn_view").get_by_text(EN["runs.view.open"]).click()
    wait_idle(page)
    fresh.goto(share_url(page))
    wait_idle(fresh)
    expect(selected(fresh, "rn_view")).to_have_text(EN["runs.view.open"])
    expect(fresh.locator('[data-testid="stMain"] h3').first).to_have_text("mini a (completed)")
    no_errors(fresh)
    context.close()


def test_predict_link_restores_source_run_and_input_mode(server, page, chromium, mini_runs):
    page.goto(server.url + "/predict")
    wait_idle(page)
    expect(field(page, "pr_run")).to_have_value("mini b · completed")  # the newest run
    pick(page, "pr_run", "mini a")
    page.locator(".st-key-pr_input").get_by_text(EN["predict.input.upload"], exact=True).click()
    wait_idle(page)
    url = share_url(page)
    assert f"pr_run={mini_runs['mini a']}" in url and "pr_input=upload" in url
    context, fresh = open_fresh(chromium, url)
    expect(field(fresh, "pr_run")).to_have_value("mini a · completed")
    expect(selected(fresh, "pr_input")).to_have_text(EN["predict.input.upload"])
    expect(fresh.locator('[data-testid="stFileUploader"]')).to_have_count(1)
    no_errors(fresh)
    context.close()


def test_links_naming_a_missing_run_say_so(server, page, mini_runs):
    from core.safe.share import encode_state

    page.goto(server.url + "/runs?s=" + encode_state({"runs": [GONE, mini_runs["mini a"]]}))
    wait_idle(page)
    warning = page.locator('[data-testid="stMain"] [data-testid="stAlertContentWarning"]')
    expect(warning).to_have_count(1)
    expect(warning).to_contain_text(GONE)
    expect(chips(page, "rn_sel")).to_have_text(["mini a (completed)"])  # the rest of the link still applies
    assert page.locator('[data-testid="stException"]').count() == 0
    page.goto(server.url + f"/predict?pr_run={GONE}")
    wait_idle(page)
    warning = page.locator('[data-testid="stMain"] [data-testid="stAlertContentWarning"]')
    expect(warning.first).to_contain_text(f"The run {GONE} from the link does not exist here")
    expect(field(page, "pr_run")).to_have_value("mini b · completed")
    assert page.locator('[data-testid="stException"]').count() == 0
    no_errors(page)


def test_profiler_link_restores_mode_batch_and_options(server, page, chromium):
    page.goto(server.url + "/profiler")
    wait_idle(page)
    page.locator(".st-key-pf_mode").get_by_text(EN["profiler.mode.train_steps"]).click()
    wait_idle(page)
    batch = page.locator(".st-key-pf_batch input")
    batch.fill("16")
    batch.press("Enter")
    wait_idle(page)
    page.locator(".st-key-pf_memory").get_by_text(EN["profiler.memory"]).click()
    wait_idle(page)
    url = share_url(page)
    assert "pf_mode=train_steps" in url and "pf_batch=16" in url and "pf_memory=true" in url
    context, fresh = open_fresh(chromium, url)
    expect(selected(fresh, "pf_mode")).to_have_text(EN["profiler.mode.train_steps"])
    expect(field(fresh, "pf_batch")).to_have_value("16")
    expect(field(fresh, "pf_memory")).to_be_checked()
    expect(field(fresh, "pf_steps")).to_be_enabled()  # the N-steps fields follow the mode
    no_errors(fresh)
    context.close()


def test_export_link_restores_formats_and_opset(server, page, chromium):
    page.goto(server.url + "/export")
    wait_idle(page)
    for label in ("Checkpoint", "TorchScript (script)", "torch.export"):
        page.locator(f".st-key-ex_formats button[aria-label='Remove {label}']").click()
        wait_idle(page)
    pick(page, "ex_opset", "18")
    url = share_url(page)
    assert "ex_opset=18" in url and url.count("ex_formats=") == 3
    context, fresh = open_fresh(chromium, url)
    expect(chips(fresh, "ex_formats")).to_have_text(["state_dict", "ONNX", "TorchScript (trace)"])  # FORMATS order
    expect(field(fresh, "ex_opset")).to_have_value("18")
    no_errors(fresh)
    shot(fresh, "share-export-restored")
    context.close()


def test_data_link_restores_view_and_augmentation_in_any_language(server, page, chromium):
    page.goto(server.url + "/data?lang=简体中文")
    wait_idle(page)
    zh = CATALOGUE["zh"]
    page.locator(".st-key-data_view").get_by_text(zh["data.view.augment"], exact=True).click()
    wait_idle(page)
    pick(page, "data_aug", "RandomRotation")
    url = share_url(page, "zh")
    assert "data_view=augment" in url and "data_aug=rotation" in url
    context, fresh = open_fresh(chromium, url)
    expect(fresh.locator("h1").first).to_have_text(zh["data.title"])
    expect(selected(fresh, "data_view")).to_have_text(zh["data.view.augment"])
    expect(field(fresh, "data_aug")).to_have_value(zh["data.augment.rotation"])
    # The link does not depend on the language: in English the same choice is restored.
    fresh.goto(url.replace("lang=%E7%AE%80%E4%BD%93%E4%B8%AD%E6%96%87", "lang=English"))
    wait_idle(fresh)
    expect(field(fresh, "data_aug")).to_have_value(EN["data.augment.rotation"])
    no_errors(fresh)
    context.close()
