"""Checks of the HTML evaluation report and the 8-bit display views."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import InvalidInputError
from defectlab.evaluation.metrics import Evaluation, evaluate_predictions
from defectlab.evaluation.report import ReportItem, write_report
from defectlab.evaluation.views import overlay_heatmap, to_display, to_thumbnail

CLASSES = ["ok", "scratch", "dent"]
TRUE = ["scratch", "scratch", "dent", "dent", "ok", "ok", "ok", "ok", "ok", "ok"]
PRED = ["scratch", "ok", "scratch", "dent", "ok", "scratch", "dent", "ok", "ok", "ok"]
SCORES = np.array([0.9, 0.3, 0.8, 0.95, 0.1, 0.7, 0.6, 0.2, 0.4, 0.05])
ODD_PATH = "lot 7/défaut <1> & \"quoted\".png"
VOID_ELEMENTS = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


class TagBalanceChecker(HTMLParser):
    """Records tags that close out of order or stay open."""

    def __init__(self) -> None:
        super().__init__()
        self.open_tags: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID_ELEMENTS:
            self.open_tags.append(tag)

    def handle_endtag(self, tag):
        if not self.open_tags or self.open_tags[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open_tags[-1:]}")
            return
        self.open_tags.pop()


def ten_image_evaluation() -> Evaluation:
    return evaluate_predictions(
        class_names=CLASSES, true_labels=TRUE, pred_labels=PRED, scores=SCORES, threshold=0.5
    )


def sixteen_bit_patch() -> np.ndarray:
    generator = np.random.default_rng(0)
    pixels = np.rint(generator.normal(900, 5, size=(120, 100))).astype(np.uint16)
    pixels[40:60, 30:50] = 1150
    return pixels


def error_items() -> list[ReportItem]:
    heatmap = np.zeros((120, 100), dtype=np.float32)
    heatmap[40:60, 30:50] = 3.0
    colour = np.zeros((300, 400, 3), dtype=np.uint8)
    colour[..., 0] = 200
    return [
        ReportItem(ODD_PATH, sixteen_bit_patch(), "scratch", "ok", 0.3, heatmap),
        ReportItem("good/part 5.png", colour, "ok", "scratch", 0.7),
        ReportItem("dent/part 2.png", np.full((50, 60), 90, dtype=np.uint8), "dent", "scratch", 0.8),
    ]


def write_ten(out_dir: Path, **overrides) -> Path:
    evaluation = ten_image_evaluation()
    arguments = {
        "title": "Brackets line 3, model 12",
        "evaluation": evaluation,
        "scores": SCORES,
        "true_is_defect": np.array(TRUE) != "ok",
        "items": error_items(),
        "loss_history": {"train": [0.9, 0.5, 0.3], "dev": [1.0, 0.6, 0.5]},
        "settings": {"model": "efficientnet-lite0", "image_size": 224, "augment": ["flip", "rotate"]},
        "reasons": ["The images are small, so 224 pixels keep every defect visible."],
    }
    arguments.update(overrides)
    return write_report(out_dir, **arguments)


def embedded_images(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in DATA_URI.findall(html)]


def test_report_written_as_balanced_html(tmp_path):
    path = write_ten(tmp_path / "out")
    html = path.read_text(encoding="utf-8")
    checker = TagBalanceChecker()
    checker.feed(html)
    checker.close()

    assert path == tmp_path / "out" / "report.html"
    assert html.startswith("<!DOCTYPE html>")
    assert checker.problems == []
    assert checker.open_tags == []
    assert list((tmp_path / "out").iterdir()) == [path]


def test_report_headline_numbers(tmp_path):
    html = write_ten(tmp_path).read_text(encoding="utf-8")

    assert "25.0 %" in html
    assert "1 of 4 defective images were passed as OK." in html
    assert "33.3 %" in html
    assert "2 of 6 good images were rejected as defective." in html
    assert "1 of 4 defective images were rejected, but under another defect class." in html
    assert "0.5" in html
    assert "0.875" in html
    assert html.index("Escape rate") < html.index("Confusion matrix")


def test_report_embeds_charts_and_thumbnails(tmp_path):
    html = write_ten(tmp_path).read_text(encoding="utf-8")
    images = embedded_images(html)
    thumbnails = [image for image in images if max(image.size) <= 160]

    # Histogram, confusion matrix, ranking curves, loss curves.
    assert len(images) - len(thumbnails) == 4
    # Three items, one of them with a heatmap overlay.
    assert len(thumbnails) == 4
    assert all(image.format == "PNG" for image in images)
    assert "Training loss" in html
    assert "efficientnet-lite0" in html
    assert "[&#34;flip&#34;, &#34;rotate&#34;]" in html
    assert "224 pixels keep every defect visible" in html


def test_report_escapes_unicode_path(tmp_path):
    html = write_ten(tmp_path).read_text(encoding="utf-8")

    assert "lot 7/défaut &lt;1&gt; &amp; &#34;quoted&#34;.png" in html
    assert "<1>" not in html
    assert "escape" in html
    assert "overkill" in html
    assert "wrong class" in html


def test_report_has_no_network_references(tmp_path):
    html = write_ten(tmp_path).read_text(encoding="utf-8")

    assert "http://" not in html
    assert "https://" not in html
    assert "<link" not in html
    assert "<script" not in html
    assert "@import" not in html


def test_report_without_loss_or_defects(tmp_path):
    evaluation = evaluate_predictions(
        class_names=["ok", "dent"],
        true_labels=["ok", "ok", "ok"],
        pred_labels=["ok", "dent", "ok"],
        scores=np.array([0.1, 0.9, 0.2]),
        threshold=0.5,
    )

    path = write_report(
        tmp_path,
        title="Only good images",
        evaluation=evaluation,
        scores=np.array([0.1, 0.9, 0.2]),
        true_is_defect=np.zeros(3, dtype=bool),
        items=[],
        loss_history=None,
        settings={},
        reasons=[],
    )
    html = path.read_text(encoding="utf-8")

    assert "There are no defective images among those evaluated, so no escape could happen." in html
    assert "1 of 3 good images were rejected as defective." in html
    assert "Ranking defective against good images needs both kinds." in html
    assert "Training loss" not in html
    assert "No errors to show." in html
    assert len(embedded_images(html)) == 2


def test_report_replaces_existing_file(tmp_path):
    (tmp_path / "report.html").write_text("old", encoding="utf-8")

    path = write_ten(tmp_path)

    assert path.read_text(encoding="utf-8") != "old"


def test_report_rejects_heatmap_of_other_size(tmp_path):
    item = ReportItem("a.png", np.zeros((20, 30), dtype=np.uint8), "dent", "ok", 0.2, np.zeros((10, 10)))

    with pytest.raises(InvalidInputError, match=r"'a.png'.*heatmap has shape \(10, 10\)"):
        write_ten(tmp_path, items=[item])


def test_report_rejects_float_pixels(tmp_path):
    item = ReportItem("a.png", np.zeros((20, 30), dtype=np.float32), "dent", "ok", 0.2)

    with pytest.raises(InvalidInputError, match="uint8 or uint16, got float32"):
        write_ten(tmp_path, items=[item])


def test_report_rejects_mismatched_scores(tmp_path):
    with pytest.raises(InvalidInputError, match=r"shape \(10,\)"):
        write_ten(tmp_path, scores=SCORES[:5])
    with pytest.raises(InvalidInputError, match="marks 10 defective images"):
        write_ten(tmp_path, true_is_defect=np.ones(10, dtype=bool))


def test_report_leaves_pyplot_unloaded(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from defectlab.evaluation import evaluate_predictions, write_report\n"
        "e = evaluate_predictions(class_names=['ok', 'dent'], true_labels=['ok', 'dent'],\n"
        "    pred_labels=['ok', 'dent'], scores=np.array([0.1, 0.9]), threshold=0.5)\n"
        f"write_report({str(tmp_path)!r}, title='t', evaluation=e, scores=np.array([0.1, 0.9]),\n"
        "    true_is_defect=np.array([False, True]), items=[], loss_history=None, settings={}, reasons=[])\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"


def test_to_display_brightens_16_bit_patch():
    pixels = sixteen_bit_patch()

    view = to_display(pixels)
    background = float(np.median(view[:30, :]))
    patch = float(view[40:60, 30:50].mean())

    assert view.dtype == np.uint8
    assert view.shape == pixels.shape
    assert patch - background > 100
    assert patch == 255


def test_to_display_keeps_8_bit():
    pixels = np.arange(60, dtype=np.uint8).reshape(6, 10)

    assert to_display(pixels) is pixels


def test_to_display_flat_16_bit_is_grey():
    view = to_display(np.full((4, 5, 3), 1000, dtype=np.uint16))

    assert view.shape == (4, 5, 3)
    assert (view == 128).all()


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((4, 4), dtype=np.float64), "uint8 or uint16, got float64"),
        (np.zeros((4, 4, 4), dtype=np.uint8), r"\(H, W\) or \(H, W, 3\), got \(4, 4, 4\)"),
        (np.zeros(4, dtype=np.uint16), r"got \(4,\)"),
    ],
)
def test_to_display_rejects_invalid_pixels(pixels, message):
    with pytest.raises(InvalidInputError, match=message):
        to_display(pixels)


def test_to_thumbnail_keeps_aspect_ratio():
    thumbnail = to_thumbnail(np.zeros((400, 1000, 3), dtype=np.uint8), max_side=160)

    assert thumbnail.shape == (64, 160, 3)
    assert to_thumbnail(np.zeros((10, 20), dtype=np.uint8)).shape == (10, 20)


def test_overlay_heatmap_colours_only_hot_pixels():
    view = np.full((40, 40), 100, dtype=np.uint8)
    heatmap = np.zeros((80, 80))
    heatmap[:40, :40] = 1.0

    blended = overlay_heatmap(view, heatmap, low=0.0, high=1.0)

    assert blended.shape == (40, 40, 3)
    assert (blended[30:, 30:] == 100).all()
    assert not (blended[:10, :10] == 100).all()
