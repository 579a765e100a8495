"""Count the TensorFlow graph ops of our model and keras.applications' for one variant.

    python benchmarks/tf_graph_ops.py EfficientNetV2S [--batch 32] [--resolution 224]
        [--bn-fold auto|inference|never]

Traces both models' inference call (``training=False``) with ``tf.function`` and prints, per
op type, how many nodes each graph has and the difference. When the compute ops (Conv2D,
DepthwiseConv2dNative, Mul, AddV2, Sigmoid, ...) are equal, the two networks do the same
arithmetic and a speed ratio of 1.0 in benchmarks/run.py is what to expect on TensorFlow.
That is the case for V2-S with ``--bn-fold never``; the default (``auto``, folded on
TensorFlow) replaces each block BatchNorm's per-element arithmetic by one ``BiasAdd``.
"""

import argparse
import collections
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def op_counts(model, batch, resolution):
    """{op type: number of nodes} of ``model``'s traced inference graph."""
    import tensorflow as tf

    spec = tf.TensorSpec((batch, resolution, resolution, 3), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return collections.Counter(node.op for node in graph.as_graph_def().node)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", nargs="?", default="EfficientNetV2S")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--bn-fold", default="auto", choices=["auto", "inference", "never"],
                        help="our blocks' bn_fold (default: the model's default)")
    args = parser.parse_args(argv)

    import keras

    import keras_efficientnet as ke

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Run with KERAS_BACKEND=tensorflow: this counts TensorFlow graph ops.")
    shape = (args.resolution, args.resolution, 3)
    ka = getattr(keras.applications, args.variant)(weights=None, input_shape=shape)
    ours = getattr(ke, args.variant)(weights=None, input_shape=shape, bn_fold=args.bn_fold)
    a, b = op_counts(ka, args.batch, args.resolution), op_counts(ours, args.batch, args.resolution)
    print(f"{args.variant}: parameters keras.applications {ka.count_params():,}, "
          f"ours {ours.count_params():,}")
    print(f"{'op':<26}{'keras.applications':>20}{'ours':>8}{'ours - ka':>11}")
    for op in sorted(set(a) | set(b), key=lambda o: -max(a[o], b[o])):
        print(f"{op:<26}{a[op]:>20}{b[op]:>8}{b[op] - a[op]:>+11}")


if __name__ == "__main__":
    main()
