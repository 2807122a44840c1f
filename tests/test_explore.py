"""``toolkit explore``: the page's logic (no Gradio needed), the page built from any latent spec
(needs Gradio), the command's guards, and one end-to-end run in headless Chromium (``browser``).

The browser test: ``python -m pytest --runbrowser -m browser tests/test_explore.py``. It trains a
tiny checkpoint, or takes ``$TOOLKIT_EXPLORE_CHECKPOINT``; its screenshots (the Generate tab, and
``*-translate.png``) go to ``$TOOLKIT_EXPLORE_SCREENSHOT``. The README's, from a quickstart checkpoint:
``TOOLKIT_EXPLORE_CHECKPOINT=runs/quickstart-.../checkpoints/step-001200.safetensors
TOOLKIT_EXPLORE_SCREENSHOT=docs/explore.png python -m pytest --runbrowser -m browser tests/test_explore.py``
"""

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_recipe

from toolkit.errors import ImageError, LatentError, ToolkitError
from toolkit.explore import KEEP, Explorer, control_count, sweep_values, values_from_controls
from toolkit.latent import LatentSpec, Variable
from toolkit.model import Model


def _model(spec=None, image_shape=(1, 28, 28)):
    """An untrained model (the page does not care how good it is): paper28 at 1/8 width, or linear nets."""
    from toolkit.networks import build_networks
    from toolkit.testing import linear_networks

    if spec is None:
        recipe = tiny_recipe()
        spec = LatentSpec(4, [Variable("item", "categorical", classes=["t-shirt", "trouser", "bag"], label="item"),
                              Variable("c1", "continuous")])
        nets = build_networks("paper28", spec, image_shape, {"width": 0.125})
    else:
        recipe, nets = tiny_recipe(), linear_networks(spec, image_shape)
    torch.manual_seed(0)
    return Model(spec, nets.eval(), recipe, image_shape, step=7)


def third_party_spec():
    """Names no built-in uses, a normal prior, and a categorical variable too long for radio buttons."""
    return LatentSpec(3, [Variable("hue", "categorical", classes=[f"h{k}" for k in range(14)]),
                          Variable("thickness", "continuous", prior="normal"),
                          Variable("shape", "categorical", classes=["round", "square"], label="shape")])


@pytest.fixture(scope="module")
def explorer():
    return Explorer(_model())


def _png(path: Path, size=(40, 30), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


# -- controls -> values ----------------------------------------------------------------------
def test_controls_map_to_values_in_the_specs_order():
    spec = third_party_spec()
    assert control_count(spec, keep=False) == 3 and control_count(spec, keep=True) == 4
    assert values_from_controls(spec, ["h3", 0.5, "square"]) == {"hue": "h3", "thickness": 0.5, "shape": "square"}
    assert values_from_controls(spec, [KEEP, False, 0.5, "round"], keep=True) == {"shape": "round"}
    assert values_from_controls(spec, ["h1", True, -1.5, KEEP], keep=True) == {"hue": "h1", "thickness": -1.5}
    with pytest.raises(ValueError, match="expected 3 control values"):
        values_from_controls(spec, ["h3", 0.5])
    with pytest.raises(ToolkitError, match="'oval' is not a class of 'shape'"):
        values_from_controls(spec, ["h3", 0.5, "oval"])


def test_sweeps_cover_every_class_or_the_priors_range():
    spec = third_party_spec()
    assert sweep_values(spec["hue"]) == [f"h{k}" for k in range(14)]
    assert sweep_values(spec["thickness"], 5) == [-2.0, -1.0, 0.0, 1.0, 2.0]  # normal prior
    assert sweep_values(Variable("c", "continuous"), 3) == [-1.0, 0.0, 1.0]  # uniform prior


# -- the views ---------------------------------------------------------------------------------
def test_generate_follows_the_controls_and_keeps_styles_for_a_seed(explorer):
    bag = explorer.generate_tensor(0, {"item": "bag", "c1": 0.0})
    assert bag.shape == (16, 1, 28, 28)
    assert torch.equal(bag, explorer.generate_tensor(0, {"item": "bag", "c1": 0.0}))
    assert not torch.equal(bag, explorer.generate_tensor(0, {"item": "trouser", "c1": 0.0}))
    assert not torch.equal(bag, explorer.generate_tensor(0, {"item": "bag", "c1": 0.9}))
    assert not torch.equal(bag, explorer.generate_tensor(1, {"item": "bag", "c1": 0.0}))
    grid = explorer.generate(0, "bag", 0.0)  # 4 x 4 images, upscaled 4x (112 px), 4 px apart
    assert grid.size == (4 * 116 + 4, 4 * 116 + 4) and grid.mode == "L"


def test_translate_shows_input_reconstruction_and_edit_and_writes_the_edit_in_a_temp_folder(explorer, tmp_path):
    files = [str(_png(tmp_path / "photo.png")), str(_png(tmp_path / "grey.png", (28, 28), "L", seed=1))]
    grid, download = explorer.translate(files, 1.0, False, "bag", False, 0.0)
    assert grid.size == (3 * 116 + 4, 2 * 116 + 4)  # one row per image: input | reconstruction | edit
    download = Path(download)
    assert download.name == "translated.png" and download.is_relative_to(explorer.workdir)
    assert Path(explorer.workdir).is_relative_to(tempfile.gettempdir())
    assert Image.open(download).size == (2 * 30 + 2, 30 + 2)  # both edits, at the model's size
    grid, download = explorer.translate(files[:1], 1.0, False, "bag", False, 0.0)
    assert Image.open(download).size == (28, 28)  # one edit: just the image
    assert explorer.translate(None, 1.0, False, "bag", False, 0.0) == (None, None)


def test_translate_uses_the_clis_conversion_and_changes_only_what_is_set(explorer, tmp_path):
    from toolkit.model import read_images

    path = _png(tmp_path / "photo.png")
    x = explorer.read([str(path)])
    assert torch.equal(x, read_images(explorer.model, [path]))
    turned = explorer.read([str(_camera_photo(tmp_path / "camera.jpg"))])  # EXIF orientation applied
    assert (turned - explorer.read([str(EXAMPLES / "sandal.png")])).abs().mean() < 0.03
    x, recon, edit = explorer.translate_tensors(x, values_from_controls(explorer.spec, [KEEP, False, 0.0], keep=True))
    assert torch.allclose(edit, recon)  # nothing set: the edit is the reconstruction
    _, _, kept = explorer.translate_tensors(x, {}, keep_details=True)
    assert torch.allclose(kept, x, atol=1e-6)  # nothing set, details kept: the input itself
    _, _, bag = explorer.translate_tensors(x, {"item": "bag"}, strength=2.0)
    assert torch.allclose(bag, explorer.model.translate(x, {"item": "bag"}, strength=2.0))


def test_uploads_are_guarded_like_the_clis_inputs(explorer, tmp_path, monkeypatch):
    path = str(_png(tmp_path / "photo.png", (100, 100)))
    monkeypatch.setattr("toolkit.images.MAX_PIXELS", 5000)  # the CLI's decompression-bomb limit
    with pytest.raises(ImageError, match="image too large"):
        explorer.read([path])
    monkeypatch.undo()
    monkeypatch.setattr("toolkit.explore.MAX_UPLOAD_BYTES", 100)
    with pytest.raises(ImageError, match="file too large"):
        explorer.read([path])
    monkeypatch.undo()
    with pytest.raises(ImageError, match="at most 16"):
        explorer.read([path] * 17)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        explorer.read([str(tmp_path / "notes.txt")])


def test_interpolate_runs_from_one_reconstruction_to_the_other(explorer, tmp_path):
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png", seed=1)
    strip, at = explorer.interpolate(str(a), str(b), 0.0)
    assert strip.size == (11 * 60 + 4, 60 + 4)  # A, 9 steps, B; shown at 56 px
    recon_a = explorer.model.reconstruct(explorer.read([str(a)]))
    assert np.array_equal(np.asarray(at), np.asarray(_display(recon_a, 252)))
    assert explorer.interpolate(str(a), None, 0.5) == (None, None)


def _display(images, size):
    from toolkit.explore import display_grid

    return display_grid(images, nrow=1, size=size)


def test_sweep_has_a_column_per_class_or_value_and_a_row_per_style(explorer):
    z = explorer.sweep_tensor("item", 0, {"item": "t-shirt", "c1": 0.5})
    assert z.shape == (4 * 3, 1, 28, 28)
    assert torch.equal(z[2::3], explorer.generate_tensor(0, {"item": "bag", "c1": 0.5})[:4])
    grid, caption = explorer.sweep("c1", 0, "bag", 0.0)
    assert grid.size == (7 * 60 + 4, 4 * 60 + 4) and "**c1** = -1 to 1" in caption


def test_the_temporary_folder_goes_with_the_explorer(tmp_path):
    ex = Explorer(_model())
    ex.translate([str(_png(tmp_path / "a.png"))], 1.0, False, "bag", False, 0.0)
    folder = ex.workdir
    assert folder.is_dir()
    del ex
    import gc

    gc.collect()
    assert not folder.exists()


# -- the page (needs gradio) -------------------------------------------------------------------
def _by_id(app):
    return {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None)}


def test_the_page_is_built_from_the_latent_spec_of_any_model(tmp_path):
    gr = pytest.importorskip("gradio")
    from toolkit.explore import build_app

    model = _model(third_party_spec(), image_shape=(3, 16, 16))
    app = build_app(model)
    assert isinstance(app, gr.Blocks)
    widgets = _by_id(app)
    hue, shape = widgets["gen-hue"], widgets["gen-shape"]
    assert isinstance(hue, gr.Dropdown) and isinstance(shape, gr.Radio)  # 14 classes: a dropdown
    assert [value for _, value in hue.choices] == [f"h{k}" for k in range(14)]
    assert [value for _, value in widgets["tr-shape"].choices] == [KEEP, "round", "square"]
    assert isinstance(widgets["gen-thickness"], gr.Slider)
    assert isinstance(widgets["tr-thickness-set"], gr.Checkbox)
    assert [value for _, value in widgets["sw-variable"].choices] == ["hue", "thickness", "shape"]
    assert widgets["sw-variable"].value == "shape"  # the supervised one
    assert {"gen-seed", "gen-new", "gen-samples", "tr-files", "tr-strength", "tr-keep-details", "tr-result",
            "tr-download", "ip-a", "ip-b", "ip-position", "ip-at", "ip-strip"} <= set(widgets)
    grid = app.explorer.generate(3, "h13", 1.5, "square")  # RGB, 16 px shown at 112
    assert grid.mode == "RGB" and grid.size == (4 * 116 + 4, 4 * 116 + 4)


def test_sliders_offer_exactly_the_values_the_command_line_accepts():
    pytest.importorskip("gradio")
    from toolkit.explore import build_app

    spec = LatentSpec(3, [Variable("c1", "continuous"), Variable("thickness", "continuous", prior="normal")])
    widgets = _by_id(build_app(_model(spec, image_shape=(1, 8, 8))))
    for name in spec.names:
        for slider in (widgets[f"gen-{name}"], widgets[f"tr-{name}"]):
            lo, hi = slider.minimum, slider.maximum
            assert slider.value == 0.0
            for value in (lo, hi):  # read as `toolkit generate --set NAME=VALUE` reads it
                assert spec.parse_assignments([f"{name}={value:g}"]) == {name: value}
            for beyond in (lo - slider.step, hi + slider.step):
                with pytest.raises(LatentError, match="out of range"):
                    spec.parse_assignments([f"{name}={beyond:g}"])
    assert (widgets["gen-c1"].minimum, widgets["gen-c1"].maximum) == (-2.0, 2.0)  # uniform prior: --set c1=2 works


def test_a_model_with_no_variables_gets_a_page_without_a_sweep():
    pytest.importorskip("gradio")
    from toolkit.explore import build_app

    model = _model(LatentSpec(5, []), image_shape=(1, 8, 8))
    widgets = _by_id(build_app(model))
    assert "gen-samples" in widgets and "sw-variable" not in widgets
    assert model.spec.variables == [] and build_app(model).explorer.generate(0).size == (4 * 116 + 4,) * 2


def test_serving_is_local_private_and_limits_uploads(monkeypatch):
    gr = pytest.importorskip("gradio")
    from toolkit import explore

    seen = {}

    def launch(self, **kw):
        seen.update(kw)
        self.local_url = "http://127.0.0.1:7860/"

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: seen.update(blocked=True))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    lines = []
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.update(threads=n))
    explore.serve(_model(), echo=lines.append)
    assert seen["threads"] == 1 and torch.get_num_threads() == threads
    assert lines == ["open http://127.0.0.1:7860/ in a browser (Ctrl-C stops)"] and seen["blocked"]
    assert seen["server_name"] == "127.0.0.1" and seen["share"] is False and seen["mcp_server"] is False
    assert seen["run_history"] is False
    assert seen["max_file_size"] == explore.MAX_UPLOAD_BYTES
    cache = Path(os.environ.pop("GRADIO_TEMP_DIR"))
    assert cache.is_relative_to(tempfile.gettempdir()) and not cache.exists()  # removed when the server stops


# -- the command -------------------------------------------------------------------------------
def _toolkit(*args, cwd, prelude="pass"):
    code = f"import sys; {prelude}; from toolkit.cli import main; sys.argv = ['toolkit', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_without_gradio_one_line_says_how_to_install_it(tmp_path):
    done = _toolkit("explore", cwd=tmp_path, prelude="sys.modules['gradio'] = None")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        'error: toolkit explore needs Gradio: pip install "toolkit-gan[explore]" (in a checkout: pip install -e ".[explore]")']


def test_a_port_in_use_or_out_of_range_is_refused_in_one_line_before_the_model_loads(tmp_path):
    with socket.socket() as server:  # a server already on the port
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        # the checkpoint does not exist: had the command read it first, it would say so instead
        busy = _toolkit("explore", "-c", "missing.safetensors", "--port", str(port), cwd=tmp_path)
    assert busy.returncode == 1
    assert busy.stderr.strip().splitlines() == [f"error: port {port} on 127.0.0.1 is in use; choose another with --port"]
    for bad in ("0", "65536"):
        out_of_range = _toolkit("explore", "-c", "missing.safetensors", "--port", bad, cwd=tmp_path)
        assert out_of_range.returncode == 2 and "Invalid value for '--port'" in out_of_range.stderr


def test_other_hosts_need_an_explicit_flag_and_a_checkpoint_is_found_as_elsewhere(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    from toolkit.cli.explore import explore, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ToolkitError, match="reachable from other machines.*add --allow-remote"):
        explore(None, "0.0.0.0", False, None, "auto")
    for host, allow in (("0.0.0.0", True), ("localhost", False)):  # past the host check, the usual -c default
        with pytest.raises(ToolkitError, match="no checkpoint found under ./runs"):
            explore(None, host, allow, None, "auto")


# -- end to end, in a browser ------------------------------------------------------------------
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pixels(page, src: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())))


def _new_src(page, selector: str, old: str | None, timeout: float = 60.0) -> tuple[str, float]:
    """Wait until the image in ``selector`` shows something other than ``old``; -> (its src, seconds waited)."""
    start = time.perf_counter()
    page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel + ' img');"
                           " return i && i.complete && i.naturalWidth > 0 && i.src !== old; }",
                           arg=[selector, old or ""], timeout=timeout * 1000, polling=20)
    return page.eval_on_selector(f"{selector} img", "i => i.src"), time.perf_counter() - start


EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def _camera_photo(path: Path) -> Path:
    """A held-out sandal as a camera would store it: RGB JPEG, larger, not square, stored sideways
    with an EXIF orientation that turns it upright."""
    sandal = Image.open(EXAMPLES / "sandal.png").convert("RGB").resize((84, 84), Image.BICUBIC)
    framed = Image.new("RGB", (84, 110))
    framed.paste(sandal, (0, 13))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    framed.transpose(Image.Transpose.ROTATE_90).save(path, format="JPEG", quality=95, exif=exif)
    return path


@pytest.mark.browser
def test_the_page_in_a_browser(tmp_path, monkeypatch):
    from conftest import chromium_path
    from playwright.sync_api import sync_playwright

    from toolkit.explore import build_app, launch_options
    from toolkit.model import load_model
    from toolkit.train import Trainer

    checkpoint = os.environ.get("TOOLKIT_EXPLORE_CHECKPOINT")
    if not checkpoint:
        checkpoint = Trainer(tiny_recipe(steps=2), tmp_path / "run", "cpu").run()["checkpoint"]
    model = load_model(checkpoint)
    var = model.spec.class_variable()
    assert var is not None, "the browser test needs a model with a categorical variable"
    photo, grey = _camera_photo(tmp_path / "photo.jpg"), EXAMPLES / "t-shirt.png"
    shot = Path(os.environ.get("TOOLKIT_EXPLORE_SCREENSHOT") or tmp_path / "explore.png").absolute()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the server writes nothing here (nor anywhere but temporary folders)

    app = build_app(model)
    port = _free_port()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as toolkit explore serves
    app.launch(**launch_options("127.0.0.1", port), prevent_thread_lock=True, quiet=True)
    outside = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 640})
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
                (f"http://127.0.0.1:{port}", "data:", "blob:")) else None)
            page.goto(f"http://127.0.0.1:{port}/")

            # Generate: change the class, the samples change (timed: click -> new image shown)
            first, _ = _new_src(page, "#gen-samples", None, timeout=120)
            times, src = [], first
            for k in (1, 2, 1):
                page.locator(f"#gen-{var.name}").get_by_text(var.classes[k], exact=True).click()
                src, waited = _new_src(page, "#gen-samples", src)
                times.append(waited)
            assert not np.array_equal(_pixels(page, first), _pixels(page, src))
            print(f"\nclass change -> new samples in the browser: {', '.join(f'{t * 1000:.0f} ms' for t in times)}")
            assert max(times) < 10
            page.locator("#gen-new").click()
            _new_src(page, "#gen-samples", src)

            # Translate: two uploads of other sizes and channels, a class set, a PNG to download
            page.get_by_role("tab", name="Translate").click()
            page.locator("#tr-files input[type=file]").set_input_files([str(photo), str(grey)])
            before, _ = _new_src(page, "#tr-result", None)
            page.locator(f"#tr-{var.name}").get_by_text(var.classes[-2], exact=True).click()
            after, _ = _new_src(page, "#tr-result", before)
            shown = _pixels(page, after)
            c, h, w = model.image_shape
            scale = max(1, round(112 / max(h, w)))
            assert shown.shape[:2] == (2 * (h * scale + 4) + 4, 3 * (w * scale + 4) + 4)
            link = page.locator("#tr-download a").first
            link.wait_for(timeout=30000)
            assert link.get_attribute("href").endswith("/translated.png")
            download = Image.open(io.BytesIO(page.request.get(link.get_attribute("href")).body()))
            assert download.size == (2 * (w + 2) + 2, h + 4)
            page.screenshot(path=str(shot.with_name(f"{shot.stem}-translate.png")), full_page=True)

            # Interpolate and sweep
            page.get_by_role("tab", name="Interpolate").click()
            page.locator("#ip-a input[type=file]").set_input_files(str(photo))
            page.locator("#ip-b input[type=file]").set_input_files(str(grey))
            _new_src(page, "#ip-at", None)
            page.get_by_role("tab", name="Sweep").click()
            _new_src(page, "#sw-result", None)

            page.get_by_role("tab", name="Generate").click()
            page.locator(f"#gen-{var.name}").get_by_text(var.classes[min(1, var.size - 1)], exact=True).click()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        app.close()
        torch.set_num_threads(threads)
    assert outside == []  # the page asks nothing of any other server
    assert list(cwd.iterdir()) == []
