"""keras.applications' own user patterns, run against ours (issue 16, in steps).

This step: ``decode_predictions`` returns keras.applications' exact class names. The
flat-graph patterns (layer names, fine-tuning recipe, encoder taps, save/load both ways)
follow with the flat graph (wip/issue16-flat-graph.patch).
"""

from __future__ import annotations

import hashlib
import inspect
import json

import numpy as np

import keras_efficientnet as ke


def test_decode_predictions_uses_keras_class_names():
    from keras.src.applications import imagenet_utils

    rows = [[w, name] for w, name in ke.imagenet_class_index()]
    text = json.dumps({str(i): row for i, row in enumerate(rows)})
    # the md5 keras.applications checks its downloaded imagenet_class_index.json against
    assert hashlib.md5(text.encode()).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"
    assert "c2c37ea517e94d9795004a39431a14cb" in inspect.getsource(imagenet_utils)
    preds = np.zeros((1, 1000), "float32")
    preds[0, [2, 0, 817]] = (0.6, 0.3, 0.1)
    assert [r[1] for r in ke.decode_predictions(preds, top=3)[0]] == [
        "great_white_shark", "tench", "sports_car"]
