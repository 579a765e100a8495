"""Bad input through the API and the command line: a clear error, nothing lost, nothing left.

``CASES`` is the list of bad inputs tried. Each runs for real (real Keras models, files, the
real CLI ``main``) and must raise its error type with a message naming the problem (CLI: exit
status 2 and one line on stderr); its ``check`` then asserts that nothing was lost or left
behind. scripts/reliability_table.py renders ``CASES`` (and test_download_faults.FAULTS) as the
table of docs/reliability.md; ``test_docs_table_is_current`` fails when the page drifts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import struct
import sys
import zlib
from typing import Callable

import h5py
import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from keras_efficientnet.cli import main
from keras_efficientnet.preprocessing import decode_predictions, normalize, read_image
from keras_efficientnet.validation import validate_model_args
from conftest import quick_on

TINY = "tiny_b0_for_reliability"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(IS_ROOT, reason="root ignores file permissions")


@pytest.fixture(scope="module", autouse=True)
def tiny_variant():
    from keras_efficientnet.specs import get_spec, register_variant
    register_variant(get_spec("EfficientNetB0").replace(name=TINY, width=0.25, depth=0.1),
                     overwrite=True)


_MODELS: dict = {}


def tiny(classes=3):
    if classes not in _MODELS:
        _MODELS[classes] = ke.create_model(TINY, input_shape=(32, 32, 3), classes=classes)
    return _MODELS[classes]


class Ctx:
    """What a case gets: a temporary folder, the Keras cache, and what it made."""

    def __init__(self, tmp_path, keras_home, capsys):
        self.tmp, self.home, self.capsys = tmp_path, keras_home, capsys
        self.kept: dict = {}

    def keep(self, path, content=b"keep me"):
        """A file whose content must survive the case."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        self.kept[str(path)] = content
        return str(path)

    def assert_kept(self):
        for path, content in self.kept.items():
            with open(path, "rb") as f:
                assert f.read() == content, f"{path} was changed"

    def files(self, folder=None):
        folder = str(folder or self.tmp)
        return sorted(os.path.relpath(os.path.join(d, f), folder)
                      for d, _, fs in os.walk(folder) for f in fs)


@dataclasses.dataclass
class Case:
    id: str
    where: str  # "API" or "CLI"
    bad_input: str
    error: type | None  # None for CLI cases: exit status 2 and one stderr line
    message: str  # regex the message must match
    run: Callable
    check: Callable | None = None  # extra "nothing lost or left" assertions
    constructor: bool = False  # needs validate_model_args wired into the factory
    marks: tuple = ()


# ---------------------------------------------------------------------------- file makers

def saved_weights(ctx, name="w.weights.h5"):
    return ke.save_weights(tiny(), str(ctx.tmp / name), variant=TINY)


def truncated(ctx, source, name):
    data = open(source, "rb").read()
    path = ctx.tmp / name
    path.write_bytes(data[: len(data) // 3])
    return str(path)


def keras_native(ctx, name="native.weights.h5"):
    path = str(ctx.tmp / name)
    tiny().save_weights(path)
    return path


def with_nan(ctx, native=False):
    path = keras_native(ctx) if native else saved_weights(ctx)
    with h5py.File(path, "a") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset)
                     and o.dtype.kind == "f" and o.size > 1 else None)
        target = next(n for n in names if "stem_conv" in n) if not native else names[0]
        data = f[target][()]
        data.flat[0] = np.nan
        f[target][...] = data
    return path


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path, width=12000, height=9000):
    """A real 1-bit PNG of 108 million pixels in about 15 kB: rows of zeros, deflated."""
    row = b"\0" * (1 + (width + 7) // 8)
    raw = zlib.compress(row * height, 9)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def class_folders(ctx, per_class=1):
    from PIL import Image
    root = ctx.tmp / "data"
    for cls in ("cats", "dogs"):
        os.makedirs(root / cls, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(np.full((12, 12, 3), 40 * i, "uint8")).save(root / cls / f"{i}.png")
    return str(root)


def timm_file(ctx, name, arch=None, filename="weights.pth"):
    import timm
    import torch
    state = timm.create_model(name).state_dict()
    path = str(ctx.tmp / filename)
    torch.save({"arch": arch, "state_dict": state} if arch else state, path)
    return path


def cli(ctx, *argv):
    code = main(list(argv))
    err = ctx.capsys.readouterr().err.strip()
    return code, err


def nothing_in(folder_fn):
    def check(ctx):
        assert ctx.files(folder_fn(ctx)) == []
    return check


def exported_dir_intact(ctx):
    ctx.assert_kept()
    assert [n for n in os.listdir(ctx.tmp / "out") if n.startswith(".export")] == []


# --------------------------------------------------------------------------------- cases

CASES = [
    # model construction: one validation helper
    Case("create-none", "API", "create_model(None)", ValueError, r"variant must be a name",
         lambda c: ke.create_model(None), constructor=True),
    Case("weights-int", "API", "weights=123", ValueError, r"weights must be None.*123 \(int\)",
         lambda c: ke.create_model(TINY, weights=123, input_shape=(32, 32, 3)), constructor=True),
    Case("classes-none", "API", "classes=None", ValueError, r"classes must be an integer",
         lambda c: ke.create_model(TINY, classes=None, input_shape=(32, 32, 3)), constructor=True),
    Case("shape-str", "API", 'input_shape="abc"', ValueError, r"input_shape must be a tuple",
         lambda c: ke.EfficientNetB0(weights=None, input_shape="abc"), constructor=True),
    Case("shape-float", "API", "input_shape=(64.7, 64, 3)", ValueError,
         r"input_shape\[0\] must be an integer.*64.7", lambda c: ke.EfficientNetB0(weights=None, input_shape=(64.7, 64, 3)),
         constructor=True),
    Case("phi-nan", "API", "EfficientNet(phi=nan)", ValueError, r"phi must be a finite number",
         lambda c: ke.EfficientNet(phi=math.nan), constructor=True),
    Case("dropout-negative", "API", "dropout_rate=-0.5", ValueError, r"dropout_rate must lie in \[0, 1\)",
         lambda c: ke.create_model(TINY, dropout_rate=-0.5, input_shape=(32, 32, 3)), constructor=True),
    Case("drop-connect", "API", "drop_connect_rate=1.5", ValueError, r"drop_connect_rate must lie in",
         lambda c: ke.create_model(TINY, drop_connect_rate=1.5, input_shape=(32, 32, 3)), constructor=True),
    Case("pooling", "API", 'pooling="sum"', ValueError, r"pooling must be None, 'avg' or 'max'",
         lambda c: ke.create_model(TINY, include_top=False, pooling="sum"), constructor=True),
    # decoding and preprocessing
    Case("top-negative", "API", "decode_predictions(top=-1)", ValueError, r"top must be at least 1",
         lambda c: decode_predictions(np.zeros((1, 1000)), top=-1)),
    Case("top-zero", "API", "decode_predictions(top=0)", ValueError, r"top must be at least 1",
         lambda c: decode_predictions(np.zeros((1, 1000)), top=0)),
    Case("top-large", "API", "decode_predictions(top=1001)", ValueError, r"top must be at most 1000",
         lambda c: decode_predictions(np.zeros((1, 1000)), top=1001)),
    Case("normalize-grey", "API", "normalize() of a 1-channel image", ValueError,
         r"3 channels .*\(1 channel\).*nothing is broadcast",
         lambda c: normalize(np.zeros((1, 8, 8, 1)))),
    # images
    Case("png-bomb", "API", "a 108-megapixel PNG of 15 kB (decompression bomb)", ValueError,
         r"refused as a possible decompression bomb \(Image size \(108000000 pixels\) exceeds limit",
         lambda c: read_image(bomb_png(c.tmp / "bomb.png"))),
    Case("png-truncated", "API", "a truncated PNG", ValueError, r"not an image file PIL understands, or truncated",
         lambda c: read_image(truncated(c, _png(c.tmp / "ok.png"), "cut.png"))),
    # saving weights
    Case("save-variant", "API", 'save_weights(variant="NotAVariant")', ValueError,
         r"Unknown EfficientNet variant 'NotAVariant'",
         lambda c: ke.save_weights(tiny(), str(c.tmp / "x.weights.h5"), variant="NotAVariant"),
         check=nothing_in(lambda c: c.tmp)),
    Case("save-missing-dir", "API", "save_weights into a missing folder", FileNotFoundError,
         r"the folder .*no_such_dir.* does not exist",
         lambda c: ke.save_weights(tiny(), str(c.tmp / "no_such_dir" / "x.weights.h5")),
         check=nothing_in(lambda c: c.tmp)),
    Case("save-file-blocked", "API", "save_weights under a path whose folder is a file",
         NotADirectoryError, r"blocker.* is a file, not a folder",
         lambda c: ke.save_weights(tiny(), os.path.join(c.keep(c.tmp / "blocker"), "x.weights.h5")),
         check=lambda c: (c.assert_kept(), c.files() == ["blocker"]) and None),
    Case("save-to-dir", "API", "save_weights to a folder", IsADirectoryError, r"it is a folder",
         lambda c: ke.save_weights(tiny(), str(c.tmp))),
    Case("save-unwritable", "API", "save_weights into a read-only folder", PermissionError,
         r"is not writable", lambda c: ke.save_weights(tiny(), str(_readonly(c) / "x.weights.h5")),
         marks=(needs_non_root,)),
    # loading weights
    Case("weights-dir", "API", "weights=<a folder>", ValueError, r"is a folder, not a weights file",
         lambda c: ke.create_model(TINY, weights=str(c.tmp), input_shape=(32, 32, 3))),
    Case("weights-truncated-native", "API", "a truncated Keras *.weights.h5", ValueError,
         r"cut\.weights\.h5.*truncated or corrupt",
         lambda c: ke.create_model(TINY, weights=truncated(c, keras_native(c), "cut.weights.h5"),
                                   input_shape=(32, 32, 3), classes=3)),
    Case("weights-truncated-flat", "API", "a truncated save_weights file", ValueError,
         r"cut\.h5.*truncated or corrupt",
         lambda c: ke.create_model(TINY, weights=truncated(c, saved_weights(c), "cut.h5"),
                                   input_shape=(32, 32, 3), classes=3)),
    Case("weights-nan", "API", "a weights file with a NaN", ValueError,
         r"non-finite values \(NaN or inf\) in stem_conv/kernel",
         lambda c: ke.create_model(TINY, weights=with_nan(c), input_shape=(32, 32, 3), classes=3)),
    Case("weights-nan-native", "API", "a Keras *.weights.h5 with a NaN", ValueError,
         r"non-finite values \(NaN or inf\)",
         lambda c: ke.create_model(TINY, weights=with_nan(c, native=True), input_shape=(32, 32, 3),
                                   classes=3)),
    Case("checkpoint-native", "API", "from_checkpoint(a valid model.save_weights file)", ValueError,
         r"is a Keras weights file written by model\.save_weights; it is valid",
         lambda c: ke.from_checkpoint(keras_native(c))),
    Case("timm-ambiguous", "API", "from_checkpoint(timm efficientnet_b0 state dict, no hint)",
         ValueError, r"fit both efficientnet_b0 .* and tf_efficientnet_b0.*"
                     r"create_model\('tf_efficientnet_b0', weights=path\)",
         lambda c: ke.from_checkpoint(timm_file(c, "efficientnet_b0"))),
    Case("timm-arch-mismatch", "API", "EfficientNetB0(weights=timm efficientnet_b0 checkpoint)",
         ValueError, r"is a timm efficientnet_b0 checkpoint \(PyTorch-native.*from its 'arch' entry"
                     r".*create_model\('efficientnet_b0'",
         lambda c: ke.EfficientNetB0(weights=timm_file(c, "efficientnet_b0", arch="efficientnet_b0"),
                                     input_shape=(32, 32, 3)),
         marks=(quick_on("tensorflow"),)),
    Case("timm-no-hint-keras-name", "API", "EfficientNetB0(weights=timm state dict, no hint)",
         ValueError, r"nothing in the file says which",
         lambda c: ke.EfficientNetB0(weights=timm_file(c, "efficientnet_b0"), input_shape=(32, 32, 3)),
         marks=(quick_on("tensorflow"),)),
    # the Keras cache
    Case("cache-is-file", "API", "KERAS_HOME/models is a file", NotADirectoryError,
         r"Keras cache folder .*models' is a file.*KERAS_HOME",
         lambda c: (c.keep(c.home / "models"), _registered_lite0()),
         check=lambda c: c.assert_kept()),
    Case("cache-unwritable", "API", "KERAS_HOME not writable", PermissionError,
         r"Keras cache folder .*KERAS_HOME to a writable folder",
         lambda c: (os.chmod(c.home, 0o500), _registered_lite0()), marks=(needs_non_root,)),
    # export: never delete what was not asked for
    Case("export-nonempty-dir", "API", "export() into a non-empty folder", FileExistsError,
         r"already exists \(a folder holding 1 entry\).*overwrite=True",
         lambda c: ke.export(tiny(), str(os.path.dirname(c.keep(c.tmp / "out" / "mine.txt")))),
         check=exported_dir_intact),
    Case("export-existing-file", "API", "export() onto an existing .onnx file", FileExistsError,
         r"b0\.onnx' already exists \(a file of 7 bytes\)",
         lambda c: ke.export(tiny(), c.keep(c.tmp / "b0.onnx"), format="onnx"),
         check=lambda c: (c.assert_kept(), c.files() == ["b0.onnx"]) and None),
    Case("export-file-blocked", "API", "export() under a path whose folder is a file",
         NotADirectoryError, r"blocker' is a file, not a folder",
         lambda c: ke.export(tiny(), os.path.join(c.keep(c.tmp / "blocker"), "m.tflite"),
                             format="tflite"),
         check=lambda c: c.assert_kept()),
    Case("export-dir-for-file", "API", "export(format='onnx') to a folder named x.onnx",
         IsADirectoryError, r"is a folder, but a onnx artifact is a file",
         lambda c: (os.makedirs(c.tmp / "x.onnx"), ke.export(tiny(), str(c.tmp / "x.onnx"), format="onnx"))),
    # training
    Case("train-tiny-data", "API", "train() on 2 classes of 1 image each", ValueError,
         r"holds 2 images in 2 classes; --validation-split 0.2 leaves 0 for validation",
         lambda c: _train(c, data=class_folders(c)),
         check=lambda c: not os.path.exists(c.tmp / "run") or None),
    Case("train-out-file", "API", "train(out=<a file>)", NotADirectoryError,
         r"--out folder .*run' is a file",
         lambda c: _train(c, out=c.keep(c.tmp / "run")), check=lambda c: c.assert_kept()),
    Case("train-out-used", "API", "train(out=<an earlier run>)", FileExistsError,
         r"already holds the outputs of a run \(model\.keras\).*--overwrite",
         lambda c: _train(c, out=os.path.dirname(c.keep(c.tmp / "run" / "model.keras"))),
         check=lambda c: c.assert_kept()),
    # the command line: one line on stderr, exit status 2
    Case("cli-top", "CLI", "classify --top 0", None, r"--top must lie in 1\.\.1000",
         lambda c: cli(c, "classify", "--top", "0")),
    Case("cli-missing-image", "CLI", "classify missing.png", None, r"no such file",
         lambda c: cli(c, "classify", str(c.tmp / "missing.png"))),
    Case("cli-bomb", "CLI", "classify bomb.png (decompression bomb)", None, r"decompression bomb",
         lambda c: cli(c, "classify", bomb_png(c.tmp / "bomb.png"))),
    Case("cli-export-existing", "CLI", "export --output <non-empty folder>", None,
         r"already exists \(a folder holding 1 entry\).*--overwrite",
         lambda c: cli(c, "export", "--model", TINY, "--output",
                       os.path.dirname(c.keep(c.tmp / "out" / "mine.txt"))),
         check=exported_dir_intact),
    Case("cli-export-blocked", "CLI", "export --output under a file", None, r"is a file, not a folder",
         lambda c: cli(c, "export", "--model", TINY, "--format", "onnx", "--output",
                       os.path.join(c.keep(c.tmp / "blocker"), "m.onnx")),
         check=lambda c: c.assert_kept()),
    Case("cli-train-tiny-data", "CLI", "train --data <2 classes, 1 image each>", None,
         r"leaves 0 for validation",
         lambda c: cli(c, "train", "--model", TINY, "--data", class_folders(c), "--weights", "none",
                       "--out", str(c.tmp / "run"))),
    Case("cli-train-truncated", "CLI", "train --weights <truncated *.weights.h5>", None,
         r"cut\.weights\.h5.*truncated or corrupt",
         lambda c: cli(c, "train", "--model", TINY, "--weights",
                       truncated(c, keras_native(c), "cut.weights.h5"), "--image-size", "32",
                       "--epochs", "1", "--steps-per-epoch", "1", "--out", str(c.tmp / "run"),
                       "--quiet"),
         check=lambda c: [f for f in c.files() if ".train-" in f] == [] or None),
    Case("cli-classify-truncated", "CLI", "classify --weights <truncated *.weights.h5>", None,
         r"cut\.weights\.h5.*truncated or corrupt",
         lambda c: cli(c, "classify", _png(c.tmp / "a.png"), "--model", TINY, "--weights",
                       truncated(c, keras_native(c), "cut.weights.h5")),
         marks=(quick_on("tensorflow"),)),
    Case("cli-cache-is-file", "CLI", "train with KERAS_HOME/models a file", None,
         r"Keras cache folder .* is a file",
         lambda c: (c.keep(c.home / "models"),
                    cli(c, "train", "--model", "EfficientNetLite0", "--image-size", "32",
                        "--out", str(c.tmp / "run")))[1],
         check=lambda c: c.assert_kept()),
]


def _png(path):
    from PIL import Image
    Image.fromarray(np.full((16, 16, 3), 100, "uint8")).save(path)
    return str(path)


def _readonly(ctx):
    folder = ctx.tmp / "ro"
    folder.mkdir()
    os.chmod(folder, 0o500)
    return folder


def _registered_lite0():
    from keras_efficientnet.pretrained.loading import registered_file
    return registered_file("EfficientNetLite0", "imagenet", True)


def _train(ctx, data=None, out=None):
    from keras_efficientnet.commands.train import train
    return train(model=TINY, data=data, weights="none", epochs=1, image_size=32,
                 steps_per_epoch=1, out=out or str(ctx.tmp / "run"), verbose=0)


def _params():
    params = []
    for case in CASES:
        marks = list(case.marks)
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_bad_input(case, tmp_path, keras_home, capsys, request):
    ctx = Ctx(tmp_path, keras_home, capsys)
    try:
        if case.where == "CLI":
            result = case.run(ctx)
            code, err = result if isinstance(result, tuple) else (2, result)
            if isinstance(result, tuple):
                assert code == 2, err
            lines = err.splitlines()
            assert len(lines) == 1, err
            assert lines[0].startswith("keras-efficientnet ") and ": error: " in lines[0]
            assert "Traceback" not in err
            assert re.search(case.message, lines[0]), lines[0]
        else:
            with pytest.raises(case.error, match=case.message):
                case.run(ctx)
        if case.check:
            case.check(ctx)
        leftovers = [f for f in ctx.files() if ".partial-" in f or ".export-" in f or ".train-" in f]
        assert leftovers == []
    finally:
        if os.path.isdir(ctx.home):
            os.chmod(ctx.home, 0o755)


# ----------------------------------------------------------------- the validation helper

@pytest.mark.parametrize("kwargs,message", [
    (dict(variant=None), r"variant must be a name .*None \(NoneType\)"),
    (dict(variant=""), r"variant name is empty"),
    (dict(variant="EfficientNetB0", weights=123), r"weights must be None"),
    (dict(variant="EfficientNetB0", weights=""), r"weights is an empty string"),
    (dict(variant="EfficientNetB0", classes=None), r"classes must be an integer"),
    (dict(variant="EfficientNetB0", classes=0), r"classes must be at least 1"),
    (dict(variant="EfficientNetB0", classes=True), r"classes must be an integer"),
    (dict(variant="EfficientNetB0", input_shape="abc"), r"input_shape must be a tuple"),
    (dict(variant="EfficientNetB0", input_shape=(64, 64)), r"input_shape must have 3 dimensions"),
    (dict(variant="EfficientNetB0", input_shape=(64.7, 64, 3)), r"input_shape\[0\] must be an integer"),
    (dict(variant="EfficientNetB0", input_shape=(64, 0, 3)), r"input_shape\[1\] must be positive"),
    (dict(variant="EfficientNetB0", dropout_rate=-0.5), r"dropout_rate must lie in \[0, 1\)"),
    (dict(variant="EfficientNetB0", dropout_rate=math.nan), r"dropout_rate must be a finite"),
    (dict(variant="EfficientNetB0", drop_connect_rate=1.0), r"drop_connect_rate must lie in"),
    (dict(variant="EfficientNetB0", drop_connect_rate="0.2"), r"drop_connect_rate must be a number"),
    (dict(check_variant=False, phi=math.nan), r"phi must be a finite number >= 0, got nan"),
    (dict(check_variant=False, phi=-1), r"phi must be a finite number >= 0"),
    (dict(check_variant=False, phi="1"), r"phi must be a number"),
    (dict(variant="EfficientNetB0", pooling="sum"), r"pooling must be None"),
    (dict(variant="EfficientNetB0", classifier_activation=3), r"classifier_activation must be"),
    (dict(variant="EfficientNetB0", include_top="yes"), r"include_top must be True or False"),
])
def test_validate_model_args_refuses(kwargs, message):
    variant = kwargs.pop("variant", None)
    with pytest.raises(ValueError, match=message):
        validate_model_args(variant, **kwargs)


def test_validate_model_args_accepts_good_arguments():
    from keras_efficientnet.specs import get_spec
    validate_model_args("EfficientNetB0")
    validate_model_args(get_spec("EfficientNetB0"), weights="imagenet", input_shape=(None, None, 3),
                        classes=np.int64(10), include_top=np.bool_(False), pooling="avg",
                        classifier_activation=None, dropout_rate=0.0, drop_connect_rate=0.5,
                        phi=1.5)
    validate_model_args(check_variant=False, phi=0, weights=os.path.join("a", "b.h5"),
                        include_top=False, classes=None)


# ------------------------------------------------------------------- what must still work

def test_sixteen_bit_and_palette_pngs_scale_correctly(tmp_path):
    from PIL import Image
    grey16 = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 32896, 65535]], "uint16")).save(grey16)
    assert Image.open(grey16).mode.startswith("I")
    assert read_image(grey16)[0, :, 0].tolist() == [0, 128, 255]  # not clipped to white
    palette = tmp_path / "p.png"
    rgb = np.zeros((2, 2, 3), "uint8")
    rgb[0, 0] = (200, 10, 30)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4).save(palette)
    assert Image.open(palette).mode == "P"
    assert read_image(palette)[0, 0].tolist() == [200, 10, 30]
    transparent = tmp_path / "pt.png"
    img = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4)
    img.info["transparency"] = 0
    img.save(transparent, transparency=0)
    assert read_image(transparent).shape == (2, 2, 3)


def test_keras_native_file_with_another_name_loads(tmp_path):
    """A model.save_weights file renamed to .h5 is valid: it loads (it used to be called
    'truncated or corrupt')."""
    model = tiny()
    native = str(tmp_path / "w.weights.h5")
    model.save_weights(native)
    renamed = tmp_path / "renamed.h5"
    os.replace(native, renamed)
    again = ke.create_model(TINY, weights=str(renamed), input_shape=(32, 32, 3), classes=3)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert sorted(os.listdir(tmp_path)) == ["renamed.h5"]


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = ke.save_weights(tiny(), str(tmp_path / "w.weights.h5"))
    finally:
        os.umask(old)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o640)


def test_timm_file_with_evidence_is_told_apart(tmp_path):
    """The file says which convention it has: its 'arch' entry, or timm's release file name."""
    from keras_efficientnet.pretrained.convert.timm import infer
    ctx = Ctx(tmp_path, None, None)
    assert infer(timm_file(ctx, "efficientnet_b0", arch="efficientnet_b0"))["variant"] == "efficientnet_b0"
    named = timm_file(ctx, "efficientnet_b0", filename="efficientnet_b0_ra-3dd342df.pth")
    info = ke.inspect_checkpoint(named)
    assert info["variant"] == "efficientnet_b0" and "file name" in info["evidence"]
    tf_named = timm_file(ctx, "tf_efficientnet_b0", filename="tf_efficientnet_b0_aa-827b6e33.pth")
    assert ke.inspect_checkpoint(tf_named)["variant"] == "tf_efficientnet_b0"


def test_cached_file_that_fails_to_load_is_fetched_once_more(tmp_path, keras_home, monkeypatch, caplog):
    """An unhashed set whose first download was cut short without Content-Length (undetectable
    at download time) fails to load; the cached file is deleted, fetched again, and loads."""
    import logging
    import threading
    import http.server
    from keras_efficientnet.pretrained import registry

    good = open(saved_weights(Ctx(tmp_path, keras_home, None), "set.h5"), "rb").read()
    served = [good[: len(good) // 2], good]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(served.pop(0) if served else good)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/model.h5"
        ws = registry.WeightSet(variant=TINY, tag="hub", source="test", format="keras_efficientnet_h5",
                                url=url, hash=None, preprocessing="imagenet", resolution=32, classes=3)
        monkeypatch.setitem(registry.REGISTRY, (TINY, "hub"), ws)
        monkeypatch.setenv("KE_DOWNLOAD_PROGRESS", "0")
        with caplog.at_level(logging.WARNING, "keras_efficientnet"):
            model = ke.create_model(TINY, weights="hub", input_shape=(32, 32, 3), classes=3)
        cached = os.path.join(str(keras_home), "models", f"{TINY}.hub.model.h5")
        assert f"The cached file {cached}" in caplog.text and "fetching it again" in caplog.text
        assert served == [] and open(cached, "rb").read() == good
        assert model.output_shape == (None, 3)
        assert sorted(os.listdir(os.path.dirname(cached))) == [os.path.basename(cached)]
    finally:
        httpd.shutdown()
        httpd.server_close()


@quick_on("tensorflow")
def test_damaged_converted_lite_cache_is_converted_again(keras_home, caplog):
    import logging
    from keras_efficientnet.pretrained import offline, registry
    ws = registry.get_weights("EfficientNetLite0")
    path = offline.packaged_file(ws)
    good = open(path, "rb").read()
    with open(path, "r+b") as f:  # flip bytes in the middle: the h5 header still opens
        f.seek(len(good) // 2)
        f.write(b"\xff" * 64)
    with caplog.at_level(logging.WARNING, "keras_efficientnet"):
        assert offline.packaged_file(ws) == path
    assert f"The cached converted weights {path} has sha256" in caplog.text
    assert open(path, "rb").read() == good


def test_overwrite_replaces_atomically(tmp_path):
    """_place with overwrite: the old artifact goes only once the new one is in place."""
    from keras_efficientnet.export import _place
    target = tmp_path / "sm"
    target.mkdir()
    (target / "old.pb").write_bytes(b"old")
    new = tmp_path / "work" / "sm"
    new.mkdir(parents=True)
    (new / "saved_model.pb").write_bytes(b"new")
    with pytest.raises(FileExistsError):
        _place(str(new), str(target))
    assert (target / "old.pb").read_bytes() == b"old" and (new / "saved_model.pb").exists()
    _place(str(new), str(target), overwrite=True)
    assert sorted(os.listdir(target)) == ["saved_model.pb"]
    assert sorted(os.listdir(tmp_path)) == ["sm", "work"] and os.listdir(tmp_path / "work") == []


@quick_on("tensorflow")
def test_cli_export_overwrite_replaces(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("old artifact")
    code = main(["export", "--model", TINY, "--image-size", "32", "--output", str(out),
                 "--overwrite", "--random-weights"])
    assert code == 0, capsys.readouterr().err
    assert "saved_model.pb" in os.listdir(out) and "mine.txt" not in os.listdir(out)
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="--top must lie in"):
        main(["--debug", "classify", "--top", "0"])
    with pytest.raises(ValueError, match="--top must lie in"):
        main(["classify", "--top", "0", "--debug"])


def test_docs_table_is_current():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import reliability_table
    finally:
        sys.path.pop(0)
    assert reliability_table.check(), ("docs/reliability.md's table differs from the test cases: "
                                       "run python scripts/reliability_table.py")
