"""Image folders as real folders look, and labels as people and spreadsheets write them
(issue 14, items 5 and 6): hidden files skipped, CSV names matched as written on any system,
numeric classes ordered and matched by value, a class value never silently read as a position."""

import unicodedata
from pathlib import Path

import pytest
import torch
from PIL import Image

from toolkit.errors import LatentError, ToolkitError
from toolkit.latent import LatentSpec, Variable
from toolkit_data.folder import class_names, find_images, load
from toolkit_data.options import FolderOptions


def _png(path: Path, value=128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)
    return path


def _load(folder, csv=None, **kw):
    return load(FolderOptions(folder=folder, labels_csv=csv, image_size=8, test_fraction=0, **kw), "train")


# -- hidden files and folders ------------------------------------------------------------------
def test_hidden_files_and_folders_are_skipped(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "a.png")
    _png(folder / "sub" / "b.png")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # AppleDouble: not an image at all
    (folder / "sub" / "._b.png").write_bytes(b"\x00\x05\x16\x07")
    for hidden in (".git", ".ipynb_checkpoints", "__MACOSX", "@eaDir", ".thumbnails"):
        (folder / hidden).mkdir()
        (folder / hidden / "junk.png").write_bytes(b"not a png")
    (folder / ".hidden.png").write_bytes(b"not a png")
    assert find_images(folder) == ["a.png", "sub/b.png"]
    assert len(_load(folder)) == 2


def test_a_hidden_image_folder_itself_is_read(tmp_path):
    folder = tmp_path / ".data" / "images"  # only names below the folder count
    _png(folder / "a.png")
    assert find_images(folder) == ["a.png"]


def test_only_hidden_files_say_so(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07")
    with pytest.raises(ToolkitError, match="no images found under .*hidden files are skipped"):
        find_images(folder)


def test_a_csv_naming_a_hidden_file_says_it_is_skipped(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "a.png")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,kind\na.png,x\n._a.png,y\n")
    with pytest.raises(ToolkitError, match=r"line 3: file '._a.png' is a hidden file"):
        _load(folder, csv)


# -- file names as written -------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    folder = tmp_path / "images"
    for name in ("cats/001.png", "cats/002.jpg", "dogs/Rex.PNG", "café.png"):
        _png(folder / name)
    return folder


@pytest.mark.parametrize("written, expected", [
    ("cats/001.png", "cats/001.png"),
    ("cats\\001.png", "cats/001.png"),             # Windows separators
    ("./cats/001.png", "cats/001.png"),            # a leading ./
    (".\\cats\\001.png", "cats/001.png"),
    ("cats//001.png", "cats/001.png"),
    ("  cats/001.png  ", "cats/001.png"),
    ("CATS/001.PNG", "cats/001.png"),              # another case, one image fits
    ("dogs/rex.png", "dogs/Rex.PNG"),
    ("cats/002", "cats/002.jpg"),                  # no extension, one image fits
    ("dogs/rex", "dogs/Rex.PNG"),
    (unicodedata.normalize("NFD", "café.png"), "café.png"),  # macOS writes decomposed accents
    ("ABSOLUTE/cats/001.png", "cats/001.png"),     # an absolute path inside the folder
])
def test_csv_names_are_matched_as_written(tree, tmp_path, written, expected):
    written = written.replace("ABSOLUTE", str(tree))
    csv = tmp_path / "labels.csv"
    csv.write_text(f"file,kind\n{written},x\n", encoding="utf-8")
    data = _load(tree, csv)
    names = find_images(tree)
    assert data.labels["kind"].tolist() == [0 if n == expected else -1 for n in names]


def test_csv_paths_relative_to_the_csv_folder(tmp_path):
    folder = tmp_path / "data" / "images"
    _png(folder / "a.png")
    _png(folder / "b.png")
    csv = tmp_path / "data" / "labels.csv"  # beside the image folder: people write images/a.png
    csv.write_text("file,kind\nimages/a.png,x\nb.png,y\n")
    assert _load(folder, csv).labels["kind"].tolist() == [0, 1]


def test_a_csv_inside_the_folder(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "a.png")
    (folder / "labels.csv").write_text("file,kind\n./a.png,x\n")
    assert _load(folder, folder / "labels.csv").labels["kind"].tolist() == [0]


@pytest.mark.parametrize("names, written, fragment", [
    (["a.png", "A.png"], "a.PNG", "fits several images (in another case): A.png, a.png"),
    (["a.png", "a.jpg"], "a", "fits several images (without its extension): a.jpg, a.png"),
])
def test_ambiguous_names_are_refused(tmp_path, names, written, fragment):
    folder = tmp_path / "images"
    for name in names:
        _png(folder / name)
    if len(find_images(folder)) < len(names):
        pytest.skip("a case-insensitive file system")
    csv = tmp_path / "labels.csv"
    csv.write_text(f"file,kind\n{written},x\n")
    with pytest.raises(ToolkitError) as err:
        _load(folder, csv)
    assert f"line 2: file '{written}' {fragment}; write the exact name" in str(err.value)


def test_an_exact_name_wins_over_a_case_match(tmp_path):
    folder = tmp_path / "images"
    for name in ("a.png", "A.png"):
        _png(folder / name)
    if len(find_images(folder)) < 2:
        pytest.skip("a case-insensitive file system")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,kind\nA.png,x\na.png,y\n")
    assert _load(folder, csv).labels["kind"].tolist() == [0, 1]  # sorted: A.png, a.png


def test_two_spellings_of_one_file_are_listed_twice(tree, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("file,kind\ncats/001.png,x\n.\\cats\\001.png,y\n")
    with pytest.raises(ToolkitError) as err:
        _load(tree, csv)
    assert "line 3: '.\\cats\\001.png' is listed twice (also as 'cats/001.png' on line 2)" in str(err.value)


def test_a_stem_is_not_matched_when_an_extension_is_written(tree, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("file,kind\ncats/001.jpg,x\n")  # the file is 001.png: a different file, not a typo to fix
    with pytest.raises(ToolkitError, match="file 'cats/001.jpg' does not exist"):
        _load(tree, csv)


def test_the_pandas_index_column_is_ignored(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "a.png")
    _png(folder / "b.png")
    csv = tmp_path / "labels.csv"
    csv.write_text(",file,kind\n0,a.png,x\n1,b.png,y\n")  # DataFrame.to_csv() without index=False
    data = _load(folder, csv)
    assert list(data.labels) == ["kind"] and data.labels["kind"].tolist() == [0, 1]


# -- numeric classes --------------------------------------------------------------------------
def test_pandas_float_labels_are_ordered_as_numbers(tmp_path):
    folder = tmp_path / "images"
    for i in range(12):
        _png(folder / f"img{i:02d}.png", value=i)
    rows = "".join(f"img{i:02d}.png,{float(i % 10 + 1)}\n" for i in range(10)) + "img10.png,\nimg11.png,NaN\n"
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\n" + rows)
    data = _load(folder, csv)
    assert data.classes["label"] == ["1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0", "8.0", "9.0", "10.0"]
    assert data.labels["label"].tolist() == list(range(10)) + [-1, -1]


@pytest.mark.parametrize("values, classes, index", [
    (["1.0", "10.0", "2.0"], ["1.0", "2.0", "10.0"], [0, 2, 1]),
    (["1", "1.0", "2"], ["1", "2"], [0, 0, 1]),             # one number written two ways: one class
    (["01", "1", "10"], ["1", "10"], [0, 0, 1]),
    (["-1", "1", "0"], ["-1", "0", "1"], [0, 2, 1]),
    (["0.5", "1e-1", "2"], ["1e-1", "0.5", "2"], [1, 0, 2]),
    (["3", "nan", "NA", "null", "1"], ["1", "3"], [1, -1, -1, -1, 0]),
    (["b", "10", "a", "2"], ["10", "2", "a", "b"], [3, 0, 2, 1]),   # not all numbers: text order
    (["None", "hat"], ["None", "hat"], [0, 1]),                      # text column: 'None' is a class
    (["inf", "1"], ["1", "inf"], [1, 0]),                            # 'inf' is not a number written by people
])
def test_class_names(values, classes, index):
    got, mapping = class_names(values)
    assert got == classes
    assert [mapping[v] for v in values] == index


# -- setting numeric classes by value ------------------------------------------------------------
def _variable(classes):
    return LatentSpec(2, [Variable("label", "categorical", classes=classes)])


@pytest.mark.parametrize("text, index", [
    ("1", 0), ("1.0", 0), ("01", 0), ("+1", 0), ("10", 9), ("10.0", 9), ("2", 1), (" 3 ", 2), ("1e1", 9),
])
def test_numeric_classes_are_matched_by_value(text, index):
    spec = _variable([f"{float(i)}" for i in range(1, 11)])
    assert spec.parse_assignments([f"label={text}"]) == {"label": index}


@pytest.mark.parametrize("text", ["0", "11", "-1", "0.0"])
def test_a_value_that_is_no_class_is_never_read_as_a_position(text):
    spec = _variable([f"{float(i)}" for i in range(1, 11)])
    with pytest.raises(LatentError, match=f"'{text}' is not a class of 'label'.*read as a name, never as a position"):
        spec.parse_assignments([f"label={text}"])


def test_mixed_numeric_and_text_classes_refuse_positions():
    spec = _variable(["5", "other"])
    assert spec.parse_assignments(["label=5"]) == {"label": 0}
    assert spec.parse_assignments(["label=OTHER"]) == {"label": 1}
    with pytest.raises(LatentError, match="never as a position"):
        spec.parse_assignments(["label=1"])


def test_names_that_are_their_positions_still_take_positions():
    spec = _variable([str(i) for i in range(10)])  # digits, or classes: 10
    assert spec.parse_assignments(["label=7"]) == {"label": 7}
    assert spec.parse_assignments(["label=07"]) == {"label": 7}
    with pytest.raises(LatentError, match="index 10 is out of range"):
        spec.parse_assignments(["label=10"])


def test_text_classes_take_names_then_positions():
    spec = _variable(["Cat", "dog"])
    assert spec.parse_assignments(["label=cat"]) == {"label": 0}
    assert spec.parse_assignments(["label=1"]) == {"label": 1}
    cased = _variable(["a", "A", "b"])
    assert cased.parse_assignments(["label=A"]) == {"label": 1}  # the exact name first
    assert cased.parse_assignments(["label=B"]) == {"label": 2}


def test_the_python_api_takes_ints_as_positions_and_text_as_names():
    spec = _variable(["1.0", "2.0", "10.0"])
    assert spec.parse_assignments({"label": 2}) == {"label": 2}      # position
    assert spec.parse_assignments({"label": "2"}) == {"label": 1}    # name, by value
    assert spec.parse_assignments({"label": 10.0}) == {"label": 2}   # a float: a value
    with pytest.raises(LatentError, match="out of range"):
        spec.parse_assignments({"label": 3})
    with pytest.raises(LatentError, match="expected a class name or position"):
        spec.parse_assignments({"label": True})


def test_a_model_trained_on_numeric_labels_generates_the_class_asked_for(tmp_path):
    # end to end: the classes in the checkpoint are numeric; --set label=1 is class 1.0
    import copy

    from tiny import TINY

    from toolkit.model import load_model
    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe
    from toolkit.train import Trainer

    folder = tmp_path / "images"
    for i in range(20):
        _png(folder / f"img{i:02d}.png", value=10 * i)
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\n" + "".join(f"img{i:02d}.png,{float(i % 10 + 1)}\n" for i in range(20)))
    data = copy.deepcopy(TINY)
    data["data"] = {"dataset": "image-folder", "labels": 10, "labeled_ramp": 2,
                    "options": {"folder": str(folder), "labels_csv": str(csv), "test_fraction": 0}}
    data["latent"]["variables"] = {"label": {"kind": "categorical", "label": "label"}}
    data["train"].update(steps=1, checkpoint_every=1, sample_every=1, log_every=1)
    result = Trainer(resolve(parse_recipe(data)), tmp_path / "run", "cpu").run()
    model = load_model(result["checkpoint"])
    var = model.spec["label"]
    assert var.classes[:3] == ["1.0", "2.0", "3.0"] and var.classes[-1] == "10.0"
    z = model.sample_z(2, ["label=1"], seed=0)
    assert torch.equal(z[:, model.spec.slices["label"]].argmax(1), torch.zeros(2, dtype=torch.long))
    z = model.sample_z(2, ["label=10"], seed=0)
    assert torch.equal(z[:, model.spec.slices["label"]].argmax(1), torch.full((2,), 9))
