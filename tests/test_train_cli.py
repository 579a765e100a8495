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
    assert sorted(os.listdir(out)) == ["curves.png", "log.csv", "model.keras", "preset", "summary.json"]
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


def test_list_command(capsys):
    assert main(["list", "*lite0*"]) == 0
    out = capsys.readouterr().out
    assert "EfficientNetLite0" in out and "tf_efficientnet_lite0" in out and "3 models" in out
    assert main(["list", "EfficientNetLite0", "--weights"]) == 0
    out = capsys.readouterr().out
    assert "EfficientNetLite0.imagenet" in out and "offline (package)" in out
    assert main(["list", "*nothing_like_this*"]) == 2
    assert "No model matches" in capsys.readouterr().err


def test_every_option_has_help_and_default():
    import argparse

    from keras_efficientnet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if not action.option_strings or action.dest in ("help", "debug"):
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
            if action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in action.help, f"{name} {action.option_strings} hides its default"


def test_help_does_not_import_keras():
    import subprocess
    import sys

    code = ("import sys; from keras_efficientnet.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('keras' in sys.modules, 'tensorflow' in sys.modules, 'jax' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "keras_efficientnet.cli", "--help"], cwd=root,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0 and "classify" in out.stdout and "list" in out.stdout
    package = subprocess.run([sys.executable, "-m", "keras_efficientnet", "--help"], cwd=root,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root})
    assert package.returncode == 0 and package.stdout == out.stdout, package.stderr[-500:]
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['keras-efficientnet']\n"
                            + code.replace("import sys; ", "")], cwd=root, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": root})
    assert probe.stdout.strip().splitlines()[-1] == "False False False", probe.stderr[-500:]


@quick_on("tensorflow")
def test_train_folders_counts_and_reload(tmp_path, capsys):
    # 12 images, split 0.25: 3 validation, 9 training (not batches x batch size)
    for cls, value in (("cats", 20), ("dogs", 200)):
        for i in range(6):
            _png(str(tmp_path / "data" / cls / f"{i}.png"), value)
    out = tmp_path / "run"
    code = main(["train", "--model", TINY, "--data", str(tmp_path / "data"), "--weights", "none",
                 "--epochs", "1", "--image-size", "32", "--batch-size", "4",
                 "--validation-split", "0.25", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "after 1 epoch " in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["train_images"], summary["validation_images"]) == (9, 3)
    assert summary["augment"] is True
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    probe = subprocess.run([sys.executable, "-c", "import keras, keras_efficientnet\n"
                            f"m = keras.saving.load_model({str(out / 'model.keras')!r})\n"
                            "print(m.output_shape)"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": root})
    assert probe.stdout.strip().endswith("(None, 2)"), probe.stderr[-800:]
