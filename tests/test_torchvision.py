"""torchvision checkpoints: parity with torchvision's own models, heads, from_checkpoint, errors,
the weights registry. References are torchvision models with random weights and random
BatchNorm statistics; nothing is downloaded (the registry's download runs against a local
HTTP server)."""

from __future__ import annotations

import functools
import http.server
import logging
import os
import shutil
import threading

import sys

import numpy as np
import pytest

# (triton is kept out of the process by conftest.py)

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import keras  # noqa: E402

import keras_efficientnet as ke  # noqa: E402
from conftest import max_rel_diff, randomize_weights, rotate, save_legacy_h5, to_numpy  # noqa: E402
from keras_efficientnet.pretrained import loading, registry  # noqa: E402
from keras_efficientnet.pretrained.convert import base  # noqa: E402
from keras_efficientnet.pretrained.convert import torchvision as tvc  # noqa: E402
from keras_efficientnet.pretrained.convert.shapes import expected_shapes  # noqa: E402
from keras_efficientnet.pretrained.naming import PREPROCESSING_WEIGHTS, flat_weights  # noqa: E402
from keras_efficientnet.specs import get_spec, resolve  # noqa: E402

SIZE = 64
MEAN = np.array([0.485, 0.456, 0.406]) * 255
STD = np.array([0.229, 0.224, 0.225]) * 255
TV_NAMES = ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
            "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
            "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]


# ----------------------------------------------------------------------------- helpers

def make_images(n, size=SIZE, seed=0):
    """0-255 NHWC images with structure (random 8x8-pixel colour blocks plus noise): pooled
    features of i.i.d. noise images are all alike, these differ from image to image."""
    rng = np.random.default_rng(seed)
    blocks = rng.uniform(0, 255, (n, size // 8, size // 8, 3)).repeat(8, axis=1).repeat(8, axis=2)
    return np.clip(blocks + rng.normal(0, 20, blocks.shape), 0, 255).astype("float32")


def make_net(name, classes, seed=0, head="sequential"):
    """A torchvision model with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, name)(num_classes=classes)
    if head == "linear":  # a user's replaced head: a bare Linear
        net.classifier = torch.nn.Linear(net.classifier[1].in_features, classes)
    gen = torch.Generator().manual_seed(seed + 1)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        # fan-in scaled convolutions keep the input's signal through the depth (torchvision's
        # fan-out init shrinks depthwise kernels so much that all images give the same logits)
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, 1.5 / fan_in ** 0.5, generator=gen)
        for module in bns:
            module.weight.uniform_(0.5, 1.5, generator=gen)
            module.bias.normal_(0.0, 0.1, generator=gen)
        # BatchNorm statistics measured on random images (so activations keep their scale and
        # the logits depend on the input), then jittered: none is 0 or 1.
        momenta = [m.momentum for m in bns]
        for module in bns:
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
        pixels = make_images(8, seed=seed + 2)
        net.train()(torch.from_numpy(((pixels - MEAN) / STD).astype("float32")).permute(0, 3, 1, 2))
        for module, momentum in zip(bns, momenta):
            module.momentum = momentum
            # near-constant channels would divide by ~sqrt(eps) and make the float32 reference
            # itself wobble (torch float32 vs float64 differed by 9e-5 on B7): floor the variance
            module.running_var.clamp_(min=0.1)
            module.running_var.mul_(torch.empty_like(module.running_var).uniform_(0.95, 1.05, generator=gen))
            module.running_mean.add_(torch.randn(module.running_mean.shape, generator=gen)
                                     * 0.05 * module.running_var.sqrt())
            module.num_batches_tracked.fill_(17)
        linear = net.classifier if head == "linear" else net.classifier[1]
        linear.weight.normal_(0.0, 2.0 / linear.in_features ** 0.5, generator=gen)
        linear.bias.normal_(0.0, 0.1, generator=gen)
    return net.eval()


def torch_outputs(net, images):
    """(pooled features, logits) of torchvision's model on 0-255 NHWC images."""
    x = torch.from_numpy(((images - MEAN) / STD).astype("float32")).permute(0, 3, 1, 2)
    with torch.no_grad():
        features = torch.flatten(net.avgpool(net.features(x)), 1)
        logits = net.classifier(features)
    return features.numpy(), logits.numpy()


def keras_logits(model, images):
    """Logits of a model with a classifier, whatever its activation: pooled features @ W + b."""
    both = keras.Model(model.inputs, [model.get_layer("avg_pool").output, model.output])
    features, probs = (to_numpy(t) for t in both(images))
    kernel, bias = (to_numpy(w) for w in model.get_layer("predictions").weights)
    return features @ kernel + bias, probs


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cache_files(home):
    return [os.path.join(d, f) for d, _, files in os.walk(home) for f in files]


def assert_informative(ref):
    """A reference that can tell a wrong conversion from a right one."""
    assert np.abs(ref).max() > 0.1
    assert np.ptp(ref, axis=0).max() > 1e-2  # the images give different outputs
    if ref.shape[-1] > 1:
        assert np.ptp(ref, axis=-1).min() > 1e-2


@pytest.fixture(scope="module")
def images():
    return make_images(2, seed=7)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Lazily made torchvision checkpoints, shared by the module: key -> (net, path)."""
    folder = tmp_path_factory.mktemp("tv")
    made = {}

    def get(name, classes, head="sequential", seed=0):
        key = (name, classes, head, seed)
        if key not in made:
            net = make_net(name, classes, seed, head)
            path = str(folder / f"{name}_{classes}_{head}_{seed}.pth")
            torch.save(net.state_dict(), path)
            made[key] = (net, path)
        return made[key]

    return get


@pytest.fixture(scope="module")
def b0(files):
    """tv B0 with torchvision's own head type (Sequential(Dropout, Linear)), 7 classes, loaded by
    name with classes=."""
    net, path = files("efficientnet_b0", 7)
    model = ke.create_model("tv_efficientnet_b0", weights=path, classes=7,
                            input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    return net, path, model


# ----------------------------------------------------------------------------- parity

def torch_logits64(net, images):
    """torchvision's logits computed in float64 (on a copy of ``net``): the exact answer both
    float32 implementations are measured against. On the deep variants torchvision's own
    float32 run is already 6e-5 from it (V2-M), so float32 against float32 adds two
    round-off errors and can exceed a tolerance that each meets."""
    import copy

    net64 = copy.deepcopy(net).double()
    x = torch.from_numpy((images.astype("float64") - MEAN) / STD).permute(0, 3, 1, 2)
    with torch.no_grad():
        return net64.classifier(torch.flatten(net64.avgpool(net64.features(x)), 1)).numpy()


def check_parity(net, model, images, classes):
    _, ref32 = torch_outputs(net, images)
    ref = torch_logits64(net, images)
    out = to_numpy(model(images))
    assert out.shape == (len(images), classes)
    assert_informative(ref)
    assert max_rel_diff(ref, ref32) < 1e-4  # the fixture is well-conditioned in float32
    assert max_rel_diff(ref, out) < 1e-4
    # parameter counts: every state-dict tensor but the step counters = every Keras weight
    # (BatchNorm statistics included); torch parameters = Keras trainable weights
    # (the keras.applications-style input Normalization's mean, variance and count are
    # Keras weights too: the file's ImageNet statistics, not in the state dict)
    state = net.state_dict()
    ours = {k: v for k, v in flat_weights(model).items() if k not in PREPROCESSING_WEIGHTS}
    assert sum(int(np.prod(v.shape)) for v in ours.values()) == \
        sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == sum(p.numel() for p in net.parameters())
    # the pure-Python weight list the converters match against is the built model's
    assert {k: tuple(v.shape) for k, v in ours.items()} == \
        expected_shapes(get_spec(model.name), classes)


def test_b0_logits_match_torchvision(b0, images):
    net, _, model = b0
    check_parity(net, model, images, 7)


# Quick suite: one backend each (B0 runs on every backend above).
@pytest.mark.parametrize("name,classes", rotate([("efficientnet_b3", 5), ("efficientnet_b7", 3),
                                                 ("efficientnet_v2_s", 4), ("efficientnet_v2_m", 6)]))
def test_logits_match_torchvision(name, classes, files, images):
    net, path = files(name, classes, seed=3)
    model = ke.create_model(f"tv_{name}", weights=path, classes=classes,
                            input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    check_parity(net, model, images, classes)


# ----------------------------------------------------------------------------- heads

def test_one_class_linear_head_by_name_and_from_checkpoint(files, images):
    net, path = files("efficientnet_b0", 1, head="linear", seed=5)
    assert "classifier.weight" in net.state_dict()
    _, ref = torch_outputs(net, images)
    assert_informative(ref)
    by_name = ke.create_model("tv_efficientnet_b0", weights=path, classes=1,
                              input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    assert max_rel_diff(ref, to_numpy(by_name(images))) < 1e-4

    model = ke.from_checkpoint(path)  # nothing but the path
    assert model.name == "tv_efficientnet_b0" and model.output_shape == (None, 1)
    x = make_images(2, 224, seed=8)
    _, ref224 = torch_outputs(net, x)
    logits, probs = keras_logits(model, x)
    assert max_rel_diff(ref224, logits) < 1e-4
    np.testing.assert_allclose(probs, 1.0, atol=1e-6)  # softmax of one class


def test_seven_class_sequential_head_from_checkpoint(b0):
    net, path, _ = b0
    model = ke.from_checkpoint(path)  # nothing but the path
    assert model.name == "tv_efficientnet_b0" and model.output_shape == (None, 7)
    x = make_images(2, 224, seed=9)
    _, ref = torch_outputs(net, x)
    assert_informative(ref)
    logits, probs = keras_logits(model, x)
    assert max_rel_diff(ref, logits) < 1e-4
    assert max_rel_diff(softmax(ref), probs) < 1e-4


def test_include_top_false_ignores_head_on_purpose(b0, images, caplog):
    net, path, _ = b0
    with caplog.at_level(logging.INFO, logger="keras_efficientnet"):
        model = ke.from_checkpoint(path, include_top=False, pooling="avg",
                                   input_shape=(SIZE, SIZE, 3))
    text = caplog.text
    assert "include_top=False" in text and "7-class classifier" in text
    assert "predictions/kernel" in text  # loading.assign names what it dropped
    features, _ = torch_outputs(net, images)
    assert max_rel_diff(features, to_numpy(model(images))) < 1e-4


def test_classes_disagreeing_with_head(b0):
    _, path, _ = b0
    with pytest.raises(ValueError, match=r"classes=5.*7 classes"):
        ke.from_checkpoint(path, classes=5)
    with pytest.raises(ValueError, match=r"classifier has 7 classes.*classes=5"):
        ke.create_model("tv_efficientnet_b0", weights=path, classes=5, input_shape=(32, 32, 3))


# ----------------------------------------------------------------------------- other formats

def test_from_checkpoint_names_variant_of_other_formats(b0, tmp_path):
    _, _, model = b0
    # keras.applications legacy h5, V1 and V2
    from keras.applications import EfficientNetB0, EfficientNetV2B0
    for ctor, expected in ((EfficientNetB0, "EfficientNetB0"), (EfficientNetV2B0, "EfficientNetV2B0")):
        ka = ctor(weights=None, input_shape=(32, 32, 3), classes=5)
        path = save_legacy_h5(ka, str(tmp_path / f"{expected}.h5"))
        info = ke.inspect_checkpoint(path)
        assert (info["format"], info["variant"], info["classes"]) == ("keras_h5", expected, 5)
    # ours, with the variant recorded
    path = ke.save_weights(model, str(tmp_path / "ours.h5"), variant="tv_efficientnet_b0")
    info = ke.inspect_checkpoint(path)
    assert (info["format"], info["variant"], info["classes"]) == \
        ("keras_efficientnet_h5", "tv_efficientnet_b0", 7)
    # ours without variant=: a model that says what it is (create_model's pretrained_cfg)
    # records it by default
    assert model.pretrained_cfg["variant"] == "tv_efficientnet_b0"
    path = ke.save_weights(model, str(tmp_path / "own.h5"))
    assert ke.inspect_checkpoint(path)["variant"] == "tv_efficientnet_b0"
    # one that does not (a plain Keras model around the same layers): B0's tensors fit
    # networks of several conventions, so no guessing
    anonymous = keras.Model(model.inputs, model.outputs)
    assert getattr(anonymous, "pretrained_cfg", None) is None
    path = ke.save_weights(anonymous, str(tmp_path / "anon.h5"))
    with pytest.raises(ValueError, match="tv_efficientnet_b0.*save_weights"):
        ke.from_checkpoint(path)


def test_from_checkpoint_names_variant_of_timm_file(tmp_path):
    if "timm" not in base._INFER:
        pytest.skip("the timm converter is not registered")
    timm = pytest.importorskip("timm")
    net = timm.create_model("efficientnet_b0", num_classes=3)
    path = str(tmp_path / "timm_b0.pth")
    torch.save(net.state_dict(), path)
    info = ke.inspect_checkpoint(path)
    assert info["format"] == "timm" and info["classes"] == 3
    assert "efficientnet_b0" in (info["variant"], *info.get("candidates", ()))


def test_from_checkpoint_names_variant_of_efficientnet_pytorch_file(tmp_path):
    if "efficientnet_pytorch" not in base._INFER:
        pytest.skip("the efficientnet_pytorch converter is not registered")
    efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
    net = efficientnet_pytorch.EfficientNet.from_name("efficientnet-b3", num_classes=4)
    path = str(tmp_path / "lukemelas_b3.pth")
    torch.save(net.state_dict(), path)
    info = ke.inspect_checkpoint(path)
    assert info["format"] == "efficientnet_pytorch" and info["classes"] == 4
    assert expected_shapes(info["variant"]) == expected_shapes("EfficientNetB3")


# ----------------------------------------------------------------------------- bad input

def snapshot(model):
    return {k: to_numpy(v).copy() for k, v in flat_weights(model).items()}


def assert_unchanged(model, before):
    after = snapshot(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_v2s_file_given_to_b0(files, keras_home):
    _, path = files("efficientnet_v2_s", 4, seed=3)
    with pytest.raises(ValueError, match=r"torchvision checkpoint of tv_efficientnet_v2_s.*"
                                         r"create_model\('tv_efficientnet_v2_s'"):
        ke.create_model("tv_efficientnet_b0", weights=path, classes=4, input_shape=(32, 32, 3))
    assert cache_files(keras_home) == []


def test_torchvision_file_given_to_other_conventions(b0, files):
    _, path, _ = b0
    # keras.applications' B0: same tensors, TensorFlow padding
    with pytest.raises(ValueError, match=r"tv_efficientnet_b0.*padding='same'"):
        tvc.read(path, get_spec("EfficientNetB0"))
    # timm's efficientnet_b7: same tensors as torchvision's B7, BatchNorm eps 1e-5
    _, b7 = files("efficientnet_b7", 3, seed=3)
    timm_b7 = get_spec("efficientnet_b7") if "efficientnet_b7" in ke.specs.VARIANTS else \
        get_spec("tv_efficientnet_b7").replace(name="efficientnet_b7", bn_epsilon=1e-5)
    with pytest.raises(ValueError, match=r"tv_efficientnet_b7.*bn_epsilon=1e-05.*0\.001"):
        tvc.read(b7, timm_b7)


def test_truncated_file(b0, tmp_path, keras_home):
    _, path, model = b0
    data = open(path, "rb").read()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    before = snapshot(model)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        loading.load_weights(model, str(bad), get_spec("tv_efficientnet_b0"))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        ke.from_checkpoint(str(bad))
    assert_unchanged(model, before)
    assert cache_files(keras_home) == []


@pytest.mark.parametrize("change", ["extra", "missing", "stray_counter"])
def test_extra_or_missing_key(b0, tmp_path, keras_home, change):
    net, _, model = b0
    state = dict(net.state_dict())
    if change == "extra":
        state["features.1.0.block.9.weight"] = torch.zeros(3)
        key = "features.1.0.block.9.weight"
    elif change == "missing":
        key = "features.3.1.block.2.fc1.bias"
        del state[key]
    else:  # a step counter whose BatchNorm was removed
        key = "features.2.0.block.1.1.num_batches_tracked"
        for part in ("weight", "bias", "running_mean", "running_var"):
            del state[f"features.2.0.block.1.1.{part}"]
    path = str(tmp_path / f"{change}.pth")
    torch.save(state, path)
    before = snapshot(model)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        loading.load_weights(model, path, get_spec("tv_efficientnet_b0"))
    assert_unchanged(model, before)
    assert cache_files(keras_home) == []


def test_checkpoint_wrappers(b0, tmp_path):
    net, _, _ = b0
    state = net.state_dict()
    spec = get_spec("tv_efficientnet_b0")
    plain = tvc.read(b0[1], spec).arrays
    for i, wrapped in enumerate(({"state_dict": state, "epoch": 3},
                                 {"model": {f"module.{k}": v for k, v in state.items()}})):
        path = str(tmp_path / f"wrapped{i}.pth")
        torch.save(wrapped, path)
        assert base.detect_format(path) == "torchvision"
        arrays = tvc.read(path, spec).arrays
        assert arrays.keys() == plain.keys()
        assert all(np.array_equal(arrays[k], plain[k]) for k in plain)


# ----------------------------------------------------------------------------- registry

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _serve(b0, http_dir):
    _, path, _ = b0
    folder, url = http_dir
    prefix = loading.file_hash(path, "sha256")[:8]
    name = f"efficientnet_b0_test-{prefix}.pth"  # torchvision's naming: sha256 prefix in the name
    shutil.copy(path, folder / name)
    return url + name, prefix


def test_registry_download_verified(b0, http_dir, keras_home, monkeypatch, images):
    net, _, model = b0
    url, prefix = _serve(b0, http_dir)
    ws = registry.WeightSet(variant="tv_efficientnet_b0", tag="test_http", source="test",
                            format="torchvision", url=url, hash=prefix, hash_algorithm="sha256",
                            preprocessing="imagenet", resolution=224, classes=7,
                            license="BSD-3-Clause")
    monkeypatch.setitem(registry.REGISTRY, ("tv_efficientnet_b0", "test_http"), ws)
    randomize_weights(model, seed=11)
    loading.load_weights(model, "test_http", get_spec("tv_efficientnet_b0"))
    _, ref = torch_outputs(net, images)
    assert max_rel_diff(ref, to_numpy(model(images))) < 1e-4
    assert [os.path.basename(p) for p in cache_files(keras_home)] == [url.rsplit("/", 1)[1]]


def test_registry_download_wrong_hash_refused(b0, http_dir, keras_home, monkeypatch):
    url, prefix = _serve(b0, http_dir)
    wrong = "0" * 8 if prefix != "0" * 8 else "1" * 8
    ws = registry.WeightSet(variant="tv_efficientnet_b0", tag="test_bad", source="test",
                            format="torchvision", url=url, hash=wrong, hash_algorithm="sha256",
                            preprocessing="imagenet", resolution=224, classes=7)
    monkeypatch.setitem(registry.REGISTRY, ("tv_efficientnet_b0", "test_bad"), ws)
    with pytest.raises(ValueError, match="Nothing was cached"):
        loading.registered_file("tv_efficientnet_b0", "test_bad", include_top=True)
    assert cache_files(keras_home) == []


def _tv_weight_enums():
    out = {}
    for name in TV_NAMES:
        enum = torchvision.models.get_model_weights(name)
        out[name] = (list(enum), enum.DEFAULT)
    return out


def test_registry_matches_torchvision_meta():
    from keras_efficientnet.specs.model import PREPROCESSINGS

    for name, (members, default) in _tv_weight_enums().items():
        variant = f"tv_{name}"
        sets = {w.url: w for w in registry.list_weights(variant)}
        assert sets.keys() == {m.url for m in members}, name
        assert registry.get_weights(variant).url == default.url
        for member in members:
            ws = sets[member.url]
            t = member.transforms()
            assert ws.format == "torchvision" and ws.license == "BSD-3-Clause"
            assert ws.hash_algorithm == "sha256" and member.url.endswith(f"-{ws.hash}.pth")
            assert len(ws.hash) >= 8 and int(ws.hash, 16) >= 0
            assert ws.top1 == member.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            assert ws.classes == len(member.meta["categories"])
            assert ws.resolution == t.crop_size[0]
            assert ws.crop == pytest.approx(t.crop_size[0] / t.resize_size[0])
            assert ws.interpolation == t.interpolation.value
            pre = PREPROCESSINGS[ws.preprocessing]
            np.testing.assert_allclose(pre.mean, np.array(t.mean) * 255, rtol=1e-6)
            np.testing.assert_allclose(pre.std, np.array(t.std) * 255, rtol=1e-6)
        # the spec's resolution is the default weights' evaluation crop
        assert get_spec(variant).resolution == default.transforms().crop_size[0]


# ----------------------------------------------------------------------------- specs vs torchvision

@pytest.mark.parametrize("name", TV_NAMES)
def test_spec_matches_torchvision_source(name):
    """Every tv spec against torchvision's model itself (built on the meta device: no memory,
    no time): keys and shapes, BatchNorm epsilon and momentum, dropout, stochastic depth,
    parameter count of the published weights."""
    spec = get_spec(f"tv_{name}")
    with torch.device("meta"):
        net = getattr(torchvision.models, name)()
    state = net.state_dict()
    assert tvc.variant_of(state) == spec.name
    mapping = tvc.key_map(spec)
    assert set(mapping) | {k for k in state if k.endswith("num_batches_tracked")} == set(state)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {m.eps for m in bns} == {spec.bn_epsilon}
    assert all(m.momentum == pytest.approx(1 - spec.bn_momentum) for m in bns)
    assert net.classifier[0].p == spec.dropout
    depth = [m.p for m in net.modules() if type(m).__name__ == "StochasticDepth"]
    assert depth == pytest.approx([b.drop_path for b in resolve(spec).blocks])
    assert spec.padding == "symmetric"
    published = torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
    shapes = expected_shapes(spec, classes=1000)
    trainable = sum(int(np.prod(s)) for k, s in shapes.items()
                    if not k.endswith(("moving_mean", "moving_variance")))
    assert trainable == published


def test_timm_equivalence_stated_in_specs():
    """tv B0-B4 are timm's efficientnet_b0..b4; B5-B7 have timm's tensors but not its epsilon."""
    timm = pytest.importorskip("timm")
    for k in range(8):
        with torch.device("meta"):
            tnet = timm.create_model(f"efficientnet_b{k}")
            vnet = getattr(torchvision.models, f"efficientnet_b{k}")()
        assert sum(p.numel() for p in tnet.parameters()) == sum(p.numel() for p in vnet.parameters())
        eps = {m.eps for m in tnet.modules() if isinstance(m, torch.nn.BatchNorm2d)}
        spec = get_spec(f"tv_efficientnet_b{k}")
        assert (eps == {spec.bn_epsilon}) == (k <= 4)
        if f"efficientnet_b{k}" in ke.specs.VARIANTS:  # timm's spec, when registered
            same = tvc._signature(get_spec(f"efficientnet_b{k}")) == tvc._signature(spec)
            assert same == (k <= 4)
