"""``toolkit explore``: a local web page (Gradio) to play with a trained model.

Everything on the page comes from the checkpoint's latent spec, so it works for any model the
toolkit can load, third-party plugins included:

- **Generate**: a choice per categorical variable (its class names), a slider per continuous
  variable (the values the command line's ``--set`` accepts), a seed and a "new styles" button;
  a grid of samples follows;
- **Translate**: upload images; input, reconstruction and edit side by side, with the same
  controls (each may keep the encoded value) plus strength and keep-details; the edit as PNG;
- **Interpolate** between two uploaded images, with a position slider;
- **Sweep** one variable: every class, or a continuous variable across its range.

In a notebook::

    from toolkit.model import load_model
    from toolkit.explore import build_app
    build_app(load_model("runs/.../checkpoints/step-001200.safetensors")).launch()

Uploads are read like the CLI reads images (:func:`toolkit.images.load_image`: same conversion,
EXIF orientation, the same pixel limit), refused above :data:`MAX_UPLOAD_BYTES`, and only ever
written to temporary folders (Gradio's upload cache, and this app's own for downloads).
Gradio is imported only by :func:`build_app` and :func:`serve`: the rest needs only torch.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch

from .errors import ImageError, ToolkitError
from .latent import VALUE_LIMITS, LatentSpec, Variable

INSTALL_HINT = 'pip install "toolkit-gan[explore]" (in a checkout: pip install -e ".[explore]")'
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # per file; pixels are limited by toolkit.images.MAX_PIXELS
MAX_FILES = 16  # images translated at once
KEEP = "(as encoded)"  # translate: leave this variable as the encoder found it
SAMPLES, SAMPLE_ROWS = 16, 4  # generate grid
SWEEP_STEPS, SWEEP_STYLES = 7, 4
INTERPOLATION_STEPS = 9
DISPLAY_SIZE = 112  # pixels an image is shown at, at least (nearest-neighbour upscaling)
RADIO_MAX = 12  # categorical variables with more classes get a dropdown


def require_gradio():
    try:
        import gradio
    except ImportError:
        raise ToolkitError(f"toolkit explore needs Gradio: {INSTALL_HINT}") from None
    return gradio


def slider_range(variable: Variable) -> tuple[float, float]:
    """A continuous variable's slider: the values the command line accepts (``--set c1=...``)."""
    limit = VALUE_LIMITS[variable.prior]
    return -limit, limit


def sweep_values(variable: Variable, steps: int = SWEEP_STEPS) -> list:
    """The values a sweep of ``variable`` shows: every class name, or ``steps`` numbers across its range."""
    if variable.kind == "categorical":
        return list(variable.classes)
    return variable.sweep(steps)


def control_count(spec: LatentSpec, keep: bool) -> int:
    """How many widget values :func:`values_from_controls` takes for ``spec``."""
    return sum(2 if keep and v.kind == "continuous" else 1 for v in spec.variables)


def values_from_controls(spec: LatentSpec, raw, keep: bool = False) -> dict:
    """Widget values, in the spec's order -> ``{name: class name | number}``.

    A categorical variable gives a class name (or :data:`KEEP`); a continuous one a number, or
    with ``keep`` a pair (set?, number). Variables left as encoded are not in the result.
    """
    raw = list(raw)
    if len(raw) != control_count(spec, keep):
        raise ValueError(f"expected {control_count(spec, keep)} control values, got {len(raw)}")
    values, it = {}, iter(raw)
    for v in spec.variables:
        if v.kind == "categorical":
            choice = next(it)
            if choice is None or choice == KEEP:
                continue
            if choice not in v.classes:
                raise ToolkitError(f"'{choice}' is not a class of '{v.name}'")
            values[v.name] = choice
        else:
            use = next(it) if keep else True
            number = next(it)
            if use and number is not None:
                values[v.name] = float(number)
    return values


def display_grid(images: torch.Tensor, nrow: int, size: int = DISPLAY_SIZE, padding: int = 4):
    """Images ``(N, C, H, W)`` in [0, 1] -> one PIL image, each upscaled (nearest) to about ``size`` px."""
    from PIL import Image
    from torchvision.utils import make_grid

    images = images.detach().float().cpu().clamp(0, 1)
    scale = max(1, round(size / max(images.shape[-2:])))
    if scale > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest")
    grid = make_grid(images, nrow=max(1, nrow), padding=padding, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr[:, :, 0] if images.shape[1] == 1 else arr)


def _paths(files) -> list[Path]:
    """Gradio file values (paths, or objects with ``.name``/``path``) -> paths, checked for size."""
    if files is None:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    paths = []
    for f in files:
        path = Path(f if isinstance(f, (str, os.PathLike)) else getattr(f, "path", None) or f.name)
        if path.is_file() and path.stat().st_size > MAX_UPLOAD_BYTES:
            raise ImageError(f"{path.name}: file too large (over {MAX_UPLOAD_BYTES // 2**20} MB), refused")
        paths.append(path)
    return paths


class Explorer:
    """What the page does, without the page: each method takes widget values, returns images."""

    def __init__(self, model, workdir: str | Path | None = None, samples: int = SAMPLES):
        self.model = model
        self.spec: LatentSpec = model.spec
        self.samples = samples
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="toolkit-explore-"))
        if not workdir:  # ours: removed with the explorer (or at exit)
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.workdir), True)

    # -- reading uploads -----------------------------------------------------------------
    def read(self, files) -> torch.Tensor | None:
        """Uploaded files -> ``(N, C, H, W)``, converted as the CLI converts its inputs."""
        from .model import read_images

        paths = _paths(files)
        if not paths:
            return None
        if len(paths) > MAX_FILES:
            raise ImageError(f"{len(paths)} images: at most {MAX_FILES} at once")
        return read_images(self.model, paths)

    # -- the four views ------------------------------------------------------------------
    def generate_tensor(self, seed, values: dict) -> torch.Tensor:
        spec = self.spec
        g = torch.Generator().manual_seed(int(seed or 0))
        z = spec.sample(self.samples, generator=g)  # same seed, same styles, whatever is set
        z = spec.assign(z, {name: self._index(name, value) for name, value in values.items()})
        return self.model.decode(z)

    def generate(self, seed, *controls):
        values = values_from_controls(self.spec, controls)
        return display_grid(self.generate_tensor(seed, values), nrow=max(1, self.samples // SAMPLE_ROWS))

    def translate_tensors(self, x: torch.Tensor, values: dict, strength: float = 1.0, keep_details: bool = False):
        """Input, reconstruction, edit: three ``(N, C, H, W)`` tensors."""
        recon = self.model.reconstruct(x)
        (edit,) = self.model.translations(x, [values], float(strength), bool(keep_details))
        return x, recon, edit

    def translate(self, files, strength, keep_details, *controls):
        """-> (input | reconstruction | edit grid, path of the edits as PNG) or (None, None)."""
        from .images import save_grid

        x = self.read(files)
        if x is None:
            return None, None
        values = values_from_controls(self.spec, controls, keep=True)
        x, recon, edit = self.translate_tensors(x, values, strength, keep_details)
        grid = display_grid(torch.stack([x, recon, edit], dim=1).flatten(0, 1), nrow=3)
        out = Path(tempfile.mkdtemp(dir=self.workdir)) / "translated.png"
        save_grid(edit, out, nrow=len(edit))  # at the model's size; one image: just the image
        return grid, str(out)

    def interpolate(self, file_a, file_b, position):
        """-> (A, the line, B as one strip; the image at ``position`` in [0, 1]) or (None, None)."""
        a, b = self.read(file_a), self.read(file_b)
        if a is None or b is None:
            return None, None
        za, zb = self.model.encode(a[:1]), self.model.encode(b[:1])
        t = torch.linspace(0, 1, INTERPOLATION_STEPS)[:, None]
        line = self.model.decode((1 - t) * za + t * zb)
        p = float(position)
        at = self.model.decode((1 - p) * za + p * zb)
        strip = display_grid(torch.cat([a[:1], line, b[:1]]), nrow=INTERPOLATION_STEPS + 2, size=64)
        return strip, display_grid(at, nrow=1, size=256)

    def sweep_tensor(self, name: str, seed, values: dict) -> torch.Tensor:
        """Rows: styles; columns: the values of ``name`` (:func:`sweep_values`); others as ``values``."""
        spec, var = self.spec, self.spec[name]
        columns = sweep_values(var)
        g = torch.Generator().manual_seed(int(seed or 0))
        base = spec.assign(spec.sample(SWEEP_STYLES, generator=g),
                           {k: self._index(k, v) for k, v in values.items() if k != name})
        z = base.repeat_interleave(len(columns), dim=0)
        for j, value in enumerate(columns):
            z[j :: len(columns)] = spec.assign(z[j :: len(columns)], {name: self._index(name, value)})
        return self.model.decode(z)

    def sweep(self, name, seed, *controls):
        if not name:
            return None, ""
        values = values_from_controls(self.spec, controls)
        var = self.spec[name]
        columns = sweep_values(var)
        grid = display_grid(self.sweep_tensor(name, seed, values), nrow=len(columns), size=64)
        what = ", ".join(columns) if var.kind == "categorical" else f"{columns[0]:g} to {columns[-1]:g}"
        return grid, f"Columns: **{name}** = {what}. Rows: styles (the Generate tab's seed and other settings)."

    def _index(self, name: str, value):
        """A class name -> its index; numbers pass through (for :meth:`LatentSpec.assign`)."""
        v = self.spec[name]
        return v.classes.index(value) if v.kind == "categorical" else float(value)


def _user_errors(fn):
    """Show a :class:`ToolkitError` as one line on the page instead of a traceback."""

    @functools.wraps(fn)
    def wrapped(*args):
        import gradio as gr

        try:
            return fn(*args)
        except ToolkitError as exc:
            raise gr.Error(str(exc)) from None

    return wrapped


def _controls(gr, spec: LatentSpec, prefix: str, keep: bool) -> list:
    """One widget per variable (two per continuous one with ``keep``), in the spec's order."""
    widgets = []
    for v in spec.variables:
        eid = f"{prefix}-{v.name}"
        if v.kind == "categorical":
            choices = ([KEEP] if keep else []) + list(v.classes)
            kind = gr.Radio if len(v.classes) <= RADIO_MAX else gr.Dropdown
            label = v.name + (f" (supervised by '{v.label}')" if v.label and v.label != v.name else "")
            widgets.append(kind(choices=choices, value=choices[0], label=label, elem_id=eid))
        else:
            lo, hi = slider_range(v)
            if keep:
                widgets.append(gr.Checkbox(value=False, label=f"set {v.name}", elem_id=f"{eid}-set"))
            widgets.append(gr.Slider(lo, hi, value=0.0, step=0.05, label=f"{v.name} ({v.prior} prior)", elem_id=eid))
    return widgets


def _describe(model) -> str:
    spec = model.spec
    c, h, w = model.image_shape
    where = f" · `{model.path.name}`" if model.path else ""
    parts = [f"u: {spec.u_size} dims, {spec.u_prior} prior (the style)"]
    for v in spec.variables:
        if v.kind == "categorical":
            parts.append(f"**{v.name}**: {v.size} classes" + (f", supervised by '{v.label}'" if v.label else ", free"))
        else:
            parts.append(f"**{v.name}**: continuous, {v.prior} prior")
    return (f"### {model.recipe.name} · step {model.step:,}{where} · {w}x{h} {'grey' if c == 1 else f'{c} channels'}\n"
            "Latent code: " + " · ".join(parts))


def build_app(model, *, samples: int = SAMPLES, title: str | None = None):
    """The page for ``model`` (a :class:`toolkit.model.Model`) as a ``gradio.Blocks``; call ``.launch()``."""
    gr = require_gradio()
    spec = model.spec
    ex = Explorer(model, samples=samples)
    with gr.Blocks(title=title or f"toolkit explore · {model.recipe.name}", analytics_enabled=False) as app:
        gr.Markdown(_describe(model))
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        gen = _controls(gr, spec, "gen", keep=False)
                        with gr.Row():
                            seed = gr.Number(value=0, precision=0, minimum=0, label="seed (styles)", elem_id="gen-seed")
                            new = gr.Button("new styles", elem_id="gen-new", variant="secondary")
                    with gr.Column(scale=2):
                        samples_img = gr.Image(label="samples", type="pil", format="png", interactive=False,
                                               buttons=["download", "fullscreen"], elem_id="gen-samples")
            with gr.Tab("Translate", id="translate"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        files = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                        label=f"images (up to {MAX_FILES})", elem_id="tr-files")
                        tr = _controls(gr, spec, "tr", keep=True)
                        strength = gr.Slider(0.0, 3.0, value=1.0, step=0.1, label="strength (past one-hot: stronger class edits)",
                                             elem_id="tr-strength")
                        keep_details = gr.Checkbox(value=False, label="keep details (add the model's edit to the input)",
                                                   elem_id="tr-keep-details")
                    with gr.Column(scale=2):
                        gr.Markdown("Each row: **input** · **reconstruction** · **edit**")
                        tr_img = gr.Image(label="input | reconstruction | edit", type="pil", format="png",
                                          interactive=False, buttons=["download", "fullscreen"], elem_id="tr-result")
                        tr_file = gr.File(label="edit as PNG (the model's size)", interactive=False, elem_id="tr-download")
            with gr.Tab("Interpolate", id="interpolate"):
                with gr.Row():
                    file_a = gr.File(file_types=["image"], type="filepath", label="image A", elem_id="ip-a")
                    file_b = gr.File(file_types=["image"], type="filepath", label="image B", elem_id="ip-b")
                position = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="position (A = 0, B = 1)", elem_id="ip-position")
                with gr.Row():
                    ip_at = gr.Image(label="at position", type="pil", format="png", interactive=False, buttons=["download"],
                                     elem_id="ip-at")
                    ip_strip = gr.Image(label=f"A · {INTERPOLATION_STEPS} steps · B", type="pil", format="png",
                                        interactive=False, buttons=["download"], elem_id="ip-strip")
            if spec.variables:
                with gr.Tab("Sweep", id="sweep") as sweep_tab:
                    default = spec.class_variable() or spec.variables[0]
                    variable = gr.Dropdown(choices=spec.names, value=default.name, label="variable", elem_id="sw-variable")
                    sw_caption = gr.Markdown(elem_id="sw-caption")
                    sw_img = gr.Image(label="sweep", type="pil", format="png", interactive=False,
                                      buttons=["download", "fullscreen"], elem_id="sw-result")

        quiet = dict(show_progress="hidden")
        gen_inputs = [seed, *gen]
        gr.on([app.load, seed.change, *[w.change for w in gen]], _user_errors(ex.generate), gen_inputs, samples_img, **quiet)
        new.click(lambda: random.randrange(2**31), None, seed, **quiet)
        tr_inputs = [files, strength, keep_details, *tr]
        gr.on([w.change for w in tr_inputs], _user_errors(ex.translate), tr_inputs, [tr_img, tr_file], **quiet)
        ip_inputs = [file_a, file_b, position]
        gr.on([w.change for w in ip_inputs], _user_errors(ex.interpolate), ip_inputs, [ip_strip, ip_at], **quiet)
        if spec.variables:
            sw_inputs = [variable, seed, *gen]
            gr.on([variable.change, sweep_tab.select], _user_errors(ex.sweep), sw_inputs, [sw_img, sw_caption], **quiet)
    app.explorer = ex  # for tests and notebooks
    return app


def launch_options(host: str = "127.0.0.1", port: int | None = None) -> dict:
    """``launch()`` arguments for a local, private page: no share link, MCP server or run history; uploads limited."""
    return dict(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES, share=False, show_error=True,
                ssr_mode=False, mcp_server=False, run_history=False)


def serve(model, host: str = "127.0.0.1", port: int | None = None, threads: int | None = 1, echo=print) -> None:
    """Build the page and serve it until Ctrl-C (or SIGTERM); uploads are limited and cached in a
    temporary folder that goes with the server.

    ``threads``: torch's CPU threads (None: leave as is). One by default: the page's small batches
    gain little from more, and lose much when other work shares the CPU (measured on 2 busy cores,
    28x28 model: 1.4 s per update with 2 threads, 0.12 s with 1).
    """
    import signal
    import threading

    if threads:
        torch.set_num_threads(threads)

    cache = tempfile.mkdtemp(prefix="toolkit-explore-gradio-")
    os.environ.setdefault("GRADIO_TEMP_DIR", cache)  # read when gradio is imported: before build_app
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main else None  # clean up on TERM too
    try:
        app = build_app(model)
        app.launch(**launch_options(host, port), prevent_thread_lock=True, quiet=True)
        echo(f"open {app.local_url} in a browser (Ctrl-C stops)")
        app.block_thread()
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(cache, ignore_errors=True)
