"""``keras-efficientnet train``: a short offline run writes its outputs; bad data directories
give one clear message and exit status 2, not a traceback."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from conftest import quick_on
from keras_efficientnet.cli import main
from keras_efficientnet.training.data import check_image_folder, digits

TINY = "tiny_b0_for_train_cli"


@pytest.fixture(scope="module", autouse=True)
def tiny_variant():
    from keras_efficientnet.specs import get_spec, register_variant
    register_variant(get_spec("EfficientNetB0").replace(name=TINY, width=0.25, depth=0.1),
                     overwrite=True)


def _png(path, value=0):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, "uint8")).save(path)


@quick_on("tensorflow", "torch")  # the command's code is backend-neutral; JAX compiles 2 minutes
def test_train_digits_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", TINY, "--weights", "none", "--epochs", "2", "--image-size",
                 "32", "--batch-size", "16", "--steps-per-epoch", "2", "--out", str(out), "--quiet"])
    assert code == 0
    assert sorted(os.listdir(out)) == ["curves.png", "log.csv", "model.keras", "summary.json"]
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"] and "val_accuracy" in rows[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"] == "sklearn digits" and len(summary["classes"]) == 10
    assert 0.0 <= summary["val_accuracy"] <= 1.0
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    model = keras.saving.load_model(out / "model.keras")
    assert model.output_shape == (None, 10)
    assert "validation accuracy" in capsys.readouterr().out


def test_image_folder_datasets(tmp_path):
    from keras_efficientnet.training.data import image_folder
    for cls, value in (("cats", 20), ("dogs", 200)):
        for i in range(5):
            _png(str(tmp_path / "data" / cls / f"{i}.png"), value)
    train, val, names = image_folder(tmp_path / "data", 32, batch_size=4, validation_split=0.2)
    assert names == ["cats", "dogs"]
    images, labels = next(iter(train))
    assert tuple(images.shape)[1:] == (32, 32, 3) and float(np.max(images)) <= 255.0
    assert sum(int(b[1].shape[0]) for b in val) == 2


@pytest.mark.parametrize("case,message", [
    ("missing", "does not exist"),
    ("empty", "no class sub-directories"),
    ("no_images", "No images"),
    ("one_class", "only one class"),
    ("unreadable", "unreadable image"),
])
def test_bad_data_dirs(tmp_path, capsys, case, message):
    data = tmp_path / "data"
    if case != "missing":
        data.mkdir()
    if case == "no_images":
        (data / "a").mkdir()
        (data / "b").mkdir()
        (data / "a" / "notes.txt").write_text("hello")
    if case in ("one_class", "unreadable"):
        _png(str(data / "a" / "0.png"))
    if case == "unreadable":
        _png(str(data / "b" / "0.png"))
        (data / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code = main(["train", "--model", TINY, "--data", str(data), "--weights", "none",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if case == "unreadable":
        assert "broken.jpg" in err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_bad_arguments(capsys):
    assert main(["train", "--model", TINY, "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["train", "--model", "EfficientNetB99"]) == 2
    assert "Unknown EfficientNet variant" in capsys.readouterr().err


def test_digits_data():
    (x, y), (xv, yv), names = digits(40, validation_split=0.25)
    assert x.shape[1:] == (40, 40, 3) and x.dtype == np.float32
    assert len(y) + len(yv) == 1797 and abs(len(yv) - 449) <= 1
    assert 0.0 <= x.min() and x.max() <= 255.0 and x.max() > 200
    assert np.array_equal(x[..., 0], x[..., 2])
    assert sorted(set(y.tolist())) == list(range(10)) and names == [str(i) for i in range(10)]
    with pytest.raises(ValueError):
        check_image_folder("/nonexistent/dir")
