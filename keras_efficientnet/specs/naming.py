"""Names that follow from a spec: layer names of the flat graph, default model names.

Pure Python (no Keras): the factory, the weight converters and the manifest of expected
weights read these, so a name is decided in one place.
"""

from __future__ import annotations


def dwconv_name(spec) -> str:
    """The depthwise layer's name inside a block: keras.applications calls it ``dwconv`` in
    EfficientNet (V1) and ``dwconv2`` in EfficientNetV2; every V2-family spec follows V2.

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.specs.naming import dwconv_name
        >>> dwconv_name(get_spec("EfficientNetB0")), dwconv_name(get_spec("EfficientNetV2S"))
        ('dwconv', 'dwconv2')
    """
    return "dwconv2" if spec.family == "v2" else "dwconv"


def pad_layers(spec) -> bool:
    """Whether stride-2 convolutions get an explicit ``ZeroPadding2D`` under the "same"
    convention (keras.applications' V1 graph: ``stem_conv_pad``, ``block2a_dwconv_pad``); V2
    convolutions pad "same" themselves.

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.specs.naming import pad_layers
        >>> pad_layers(get_spec("EfficientNetB0")), pad_layers(get_spec("EfficientNetV2B0"))
        (True, False)
    """
    return spec.family != "v2"


def default_model_name(name: str) -> str:
    """keras.applications' default model name for a constructor name: ``efficientnetb0``,
    ``efficientnetv2-b0``; other names lower-cased the same way.

    Example:
        >>> from keras_efficientnet.specs.naming import default_model_name
        >>> default_model_name("EfficientNetB0"), default_model_name("EfficientNetV2S")
        ('efficientnetb0', 'efficientnetv2-s')
    """
    if name.startswith("EfficientNetV2") and len(name) > len("EfficientNetV2"):
        return "efficientnetv2-" + name[len("EfficientNetV2"):].lower()
    return name.lower()


def block_output(block) -> str:
    """The flat graph's layer whose output is a resolved block's output: ``block2b_add`` for
    a residual block, ``block2a_project_bn`` otherwise (``block1a_project_activation`` for a
    single-convolution Fused-MBConv), as in keras.applications.

    Example:
        >>> from keras_efficientnet.specs import get_spec, resolve
        >>> from keras_efficientnet.specs.naming import block_output
        >>> [block_output(b) for b in resolve(get_spec("EfficientNetB0")).blocks[:3]]
        ['block1a_project_bn', 'block2a_project_bn', 'block2b_add']
    """
    if block.skip:
        return f"{block.name}_add"
    if block.kind == "fu" and block.hidden_channels is None:
        return f"{block.name}_project_activation"
    return f"{block.name}_project_bn"
