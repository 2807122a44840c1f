"""Shared test options: ``slow`` tests run only with ``--runslow``; ``gpu`` tests need CUDA;
``browser`` tests run only with ``--runbrowser`` and need Playwright and a Chromium."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")
    parser.addoption("--runbrowser", action="store_true", default=False,
                     help="also run tests marked browser (Playwright + headless Chromium)")


def chromium_path():
    """A Chromium for Playwright: $CHROMIUM, then the system's (Debian's chromium), else None."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _no_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "no playwright (pip install playwright)"
    own = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    if chromium_path() is None and not list(own.glob("chromium*")):
        return "no Chromium (apt-get install chromium, or set CHROMIUM)"
    return None


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow")
    run_browser = config.getoption("--runbrowser")
    skip_slow = pytest.mark.skip(reason="slow: give --runslow to run")
    has_gpu = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords:
            if has_gpu is None:
                import torch

                has_gpu = torch.cuda.is_available()
            if not has_gpu:
                item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device"))
        if "browser" in item.keywords:
            missing = "give --runbrowser to run" if not run_browser else _no_browser()
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"browser: {missing}"))
