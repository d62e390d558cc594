"""Browser: a learner's own data and other people's models (issue 21). An ImageFolder zip made here is
uploaded on the Data page and shown (after a zip bomb is refused while another user's page answers);
an ONNX file made by torch.onnx is opened on the Export page, its graph and node table shown and run."""
from __future__ import annotations

import pytest

from core.i18n import CATALOGUE
from tests.core.ml.test_onnx_view import other_route_onnx
from tests.datafiles import shapes_zip, zip_bomb
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
UPLOAD_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'
SUCCESS = '[data-testid="stAlertContentSuccess"]'


def test_upload_an_imagefolder_zip_and_see_it(server, page, chromium):
    page.goto(server.url + "/data")
    wait_idle(page)
    page.get_by_text(EN["datasets.upload.title"]).click()
    # A zip bomb first: a clear message, and another user's page answers meanwhile.
    other = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "bomb.zip", "mimeType": "application/zip",
                                                       "buffer": zip_bomb(mb=20)}])
    wait_idle(page)
    page.get_by_role("button", name=EN["datasets.upload.add"]).click()
    other.goto(server.url + "/tensors")
    wait_idle(other)
    assert other.locator('[data-testid="stMain"] h1').first.inner_text() == EN["tensors.title"]
    other.context.close()
    page.wait_for_selector('[data-testid="stAlertContentError"]')
    assert "zip bomb" in page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    # Then a good ImageFolder zip.
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "shapes.zip", "mimeType": "application/zip",
                                                       "buffer": shapes_zip(per_class=20)}])
    wait_idle(page)
    page.get_by_role("textbox", name=EN["datasets.upload.name"]).fill("shapes")
    page.get_by_role("textbox", name=EN["datasets.upload.name"]).press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=EN["datasets.upload.add"]).click()
    wait_idle(page)
    page.wait_for_selector(SUCCESS)
    added = page.locator(SUCCESS).first.inner_text()
    assert "Added as" in added and "shapes-" in added
    no_errors(page)
    main = page.locator('[data-testid="stMain"]')
    assert "data_ds=shapes-" in page.url and "Source: your dataset shapes-" in main.inner_text()  # chosen
    assert "43 training, 5 validation and 12 test images" in main.inner_text().replace("\u00a0", " ")
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1  # the sample grid
    assert "python -m core.train --dataset shapes-" in main.inner_text()
    shot(page, "datasets-upload")


def test_open_an_onnx_file_and_see_its_graph_and_node_table(server, page):
    data, _ = other_route_onnx(batch=1)
    page.goto(server.url + "/export?ex_mode=open")
    wait_idle(page)
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "tanh.onnx", "mimeType": "application/octet-stream",
                                                       "buffer": data}])
    wait_idle(page)
    page.wait_for_selector(SUCCESS)
    assert "onnx.checker passed" in page.locator(SUCCESS).first.inner_text()
    no_errors(page)
    shot(page, "onnx-open-top")
    graph = page.locator('[data-testid="stGraphVizChart"] svg')
    graph.first.wait_for()
    assert "Gemm" in graph.first.inner_html() and "Tanh" in graph.first.inner_html()
    tables = page.locator('[data-testid="stDataFrame"]')
    assert tables.count() == 2  # inputs and outputs; the node table
    page.get_by_role("button", name=EN["onnx.run"]).click()
    wait_idle(page)
    page.locator('[data-testid="stMetric"]').first.wait_for()
    assert "%" in page.locator('[data-testid="stMetric"]').first.inner_text()
    no_errors(page)
    shot(page, "onnx-open")

