"""A failed download (no network, a dead mirror) is one clear error, for every downloading dataset."""

import subprocess
import sys
from pathlib import Path

import pytest
import torchvision

from toolkit.errors import ToolkitError
from toolkit.plugins import registry

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "mnist.yaml"
OFFLINE = ("Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror.example/mnist/, got:\n"
           "<urlopen error [Errno -2] Name or service not known>\n")


def refuse(*args, **kwargs):
    raise RuntimeError(OFFLINE)


@pytest.mark.parametrize("dataset, torchvision_class", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"),
                                                        ("svhn", "SVHN")])
def test_a_failed_download_names_the_data_the_folder_and_the_reason(dataset, torchvision_class, tmp_path, monkeypatch):
    if dataset == "svhn":
        pytest.importorskip("scipy.io")
    monkeypatch.setattr(torchvision.datasets, torchvision_class, refuse)
    options = {"root": str(tmp_path), "download": True}
    with pytest.raises(ToolkitError) as info:
        registry("dataset").get(dataset).build(options=options, split="train", where="data.options")
    message = str(info.value)
    assert message.startswith(f"downloading {torchvision_class if dataset != 'svhn' else 'SVHN'} to {tmp_path} failed")
    assert "Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -2] Name or service not known>" in message
    assert "\n" not in message and message.endswith("set data.options.download=false")


def test_the_command_line_shows_one_line_and_no_traceback(tmp_path):
    script = (
        "import sys, torchvision, toolkit.cli\n"
        "def refuse(*a, **k): raise RuntimeError('Error downloading x.gz:\\n<urlopen error offline>')\n"
        "torchvision.datasets.MNIST = refuse\n"
        f"sys.argv = ['toolkit', 'train', '{RECIPE}', '--dry-run',"
        f" '--set', 'data.options.root={tmp_path}']\n"
        "toolkit.cli.main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"downloading MNIST to {tmp_path} failed: Error downloading x.gz: <urlopen error offline>" in result.stderr
