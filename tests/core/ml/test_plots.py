"""core.ml.plots.image_grid: one image of the whole grid, each picture where its title says."""
import base64
import io

import torch
from PIL import Image

from core.ml.plots import TITLE_PX, image_grid


def decoded(fig) -> Image.Image:
    source = fig.data[0].source
    assert source.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))


def test_grey_images_make_one_png_with_a_title_over_each():
    images = torch.zeros(10, 28, 28)
    for i in range(10):
        images[i, :, : i + 1] = 1.0  # image i has i + 1 white columns on the left
    fig = image_grid(images, [f"c{i}" for i in range(10)], cols=4, size=84)
    assert len(fig.data) == 1 and fig.data[0].type == "image"
    png = decoded(fig).convert("RGBA")
    notes = fig.layout.annotations
    assert [a.text for a in notes] == [f"c{i}" for i in range(10)]
    scale = 84 / 28
    band = round(TITLE_PX / scale)
    for i, note in enumerate(notes):
        # The picture under title i starts band/2 below the title's centre; count its white columns.
        left, top = round(note.x - 14), round(note.y + band / 2)
        row = [png.getpixel((left + x, top + 14)) for x in range(28)]
        assert sum(p[:3] == (255, 255, 255) for p in row) == i + 1
        assert png.getpixel((round(note.x), round(note.y)))[3] == 0  # the title band is transparent
    rows = 3
    assert png.height == rows * (28 + band) + (rows + 1) * round(4 / scale)
    assert fig.layout.height == round(png.height * scale) + 10  # every row at size px, room for titles


def test_rgb_and_single_channel_layouts_and_escaped_titles():
    rgb = torch.zeros(2, 3, 8, 8)
    rgb[0, 0] = 1.0  # red
    fig = image_grid(rgb, ["<b>x</b>", "ok"], cols=8)
    png = decoded(fig).convert("RGBA")
    note = fig.layout.annotations[0]
    band = round(TITLE_PX / (90 / 8))
    assert png.getpixel((round(note.x), round(note.y + band / 2 + 4)))[:3] == (255, 0, 0)
    assert note.text == "&lt;b&gt;x&lt;/b&gt;"  # plotly shows it literally
    assert len(image_grid(torch.rand(3, 1, 5, 5), ["a", "b", "c"]).layout.annotations) == 3
    assert image_grid(torch.rand(1, 5, 5), []).layout.annotations[0].text == ""
