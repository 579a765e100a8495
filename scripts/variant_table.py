"""Print the README's variant table: parameters (both conventions), multiply-adds and default
resolution of every public constructor, from the specs (no model is built; the counts are
tested against keras.applications, timm and torchvision in tests/).

usage: python scripts/variant_table.py
"""

from keras_efficientnet.flops import count_flops_spec, count_params_spec
from keras_efficientnet.models.constructors import CONSTRUCTORS
from keras_efficientnet.pretrained.registry import get_weights, has_weights
from keras_efficientnet.specs import get_spec

print("| constructor | parameters | trainable | GMACs | resolution | `weights=\"imagenet\"` from |")
print("|---|---:|---:|---:|---:|---|")
for name in CONSTRUCTORS:
    spec = get_spec(name)
    total, trainable = count_params_spec(spec)
    source = "-"
    if has_weights(name, "imagenet"):
        default = get_weights(name, "imagenet")
        source = f"{default.source} (`{default.tag}`, top-1 {default.top1})"
    print(f"| `{name}` | {total / 1e6:.2f}M | {trainable / 1e6:.2f}M | "
          f"{count_flops_spec(spec) / 1e9:.2f} | {spec.resolution} | {source} |")
