"""Print the README's variant table: parameters (Keras count_params, BatchNorm statistics
included; with the 1000-class classifier) and default resolution of every constructor.

usage: KERAS_BACKEND=tensorflow python scripts/variant_table.py > /tmp/table.md
"""

import keras_efficientnet as ke
from keras_efficientnet.models.constructors import CONSTRUCTORS
from keras_efficientnet.pretrained.registry import has_weights

print("| constructor | parameters | trainable | resolution | `weights=\"imagenet\"` from |")
print("|---|---:|---:|---:|---|")
for name, constructor in CONSTRUCTORS.items():
    model = constructor(weights=None, input_shape=(32, 32, 3))
    trainable = int(sum(__import__("numpy").prod(w.shape) for w in model.trainable_weights))
    source = ke.list_weights(name)[0].source if has_weights(name, "imagenet") else "-"
    print(f"| `{name}` | {model.count_params() / 1e6:.2f}M | {trainable / 1e6:.2f}M | "
          f"{ke.get_spec(name).resolution} | {source} |")
