"""The embedded detection set, COCO annotations in and out, and COCO mAP by pycocotools.

The boxes are checked against the masks they come from, the mAP against hand-worked cases of
COCO's definition, and every bad annotation against its message."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from keras_efficientnet.detection.data import (CocoData, coco_map, load_coco,  # noqa: E402
                                               pasted_boxes, write_coco)
from keras_efficientnet.segmentation.datasets import pasted_objects  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return pasted_boxes(12, 128, seed=3)


def test_instances_option_keeps_the_segmentation_set(data):
    x, y, names = pasted_objects(6, 128, seed=3)
    x2, y2, names2, inst = pasted_objects(6, 128, seed=3, return_instances=True)
    assert (x == x2).all() and (y == y2).all() and names == names2
    assert ((inst > 0) == (y > 0)).all()


def test_boxes_are_tight_around_the_visible_objects(data):
    _, masks, _, inst = pasted_objects(12, 128, seed=3, return_instances=True)
    total = 0
    for boxes, classes, mask, ins in zip(data.boxes, data.classes, masks, inst):
        assert boxes.dtype == np.float32 and classes.dtype == np.int32
        assert len(boxes) == len(classes) >= 1
        for (x1, y1, x2, y2), c in zip(boxes.astype(int), classes):
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
            inside = mask[y1:y2, x1:x2] == c + 1
            # the object's class touches all four edges of its box
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            total += 1
        # every visible object with enough pixels has a box
        assert len(boxes) == sum((ins == k).sum() >= 16 for k in range(1, ins.max() + 1))
    assert total >= 12
    assert {0, 1} <= set(np.concatenate(data.classes).tolist())


def test_same_seed_same_set_and_bad_arguments():
    a, b, c = pasted_boxes(3, 128, seed=1), pasted_boxes(3, 128, seed=1), pasted_boxes(3, 128, seed=2)
    assert (a.images == b.images).all() and all((p == q).all() for p, q in zip(a.boxes, b.boxes))
    assert not (a.images == c.images).all()
    with pytest.raises(ValueError, match="multiple of 128"):
        pasted_boxes(2, 96)
    with pytest.raises(ValueError, match="count"):
        pasted_boxes(0, 128)


def test_coco_round_trip(data, tmp_path):
    path = write_coco(tmp_path, *data)
    back = load_coco(str(tmp_path))
    assert isinstance(back, CocoData) and back.skipped == []
    assert back.class_names == ("horse", "coin") and back.category_ids == (1, 2)
    for img, img2, b, b2, c, c2 in zip(data.images, back.images, data.boxes, back.boxes,
                                       data.classes, back.classes):
        assert (img == img2).all() and (b == b2).all() and (c == c2).all()
    assert load_coco(path).file_names == back.file_names


def coco_doc(annotations, images=None):
    return {"images": images or [{"id": 1, "file_name": "a.png", "width": 128, "height": 96}],
            "annotations": annotations, "categories": [{"id": 5, "name": "cat"},
                                                       {"id": 9, "name": "dog"}]}


def write(tmp_path, doc, image=True):
    from PIL import Image

    (tmp_path / "images").mkdir(exist_ok=True)
    if image:
        Image.fromarray(np.zeros((96, 128, 3), "uint8")).save(tmp_path / "images" / "a.png")
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(doc) if isinstance(doc, dict) else doc)
    return str(path)


def ann(i, bbox, cat=5, **kw):
    return {"id": i, "image_id": 1, "category_id": cat, "bbox": bbox, **kw}


def test_clipped_crowd_outside_and_negatives_are_counted(tmp_path):
    doc = coco_doc([ann(1, [10, 10, 20, 30]), ann(2, [120, 90, 20, 20], cat=9),
                    ann(3, [200, 10, 5, 5]), ann(4, [0, 0, 10, 10], iscrowd=1),
                    ann(5, [5, 5, 0, 7])],
                   images=[{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "a.png"}])
    data = load_coco(write(tmp_path, doc))
    np.testing.assert_array_equal(data.boxes[0], [[10, 10, 30, 40], [120, 90, 128, 96]])
    assert data.classes[0].tolist() == [0, 1] and data.boxes[1].shape == (0, 4)
    reasons = "\n".join(data.skipped)
    assert len(data.skipped) == 4
    for needle in ("annotation 2 (a.png): box [120, 90, 20, 20] clipped", "annotation 3",
                   "annotation 4 (a.png): iscrowd=1", "annotation 5"):
        assert needle in reasons


@pytest.mark.parametrize("doc,match", [
    ("{not json", "not valid JSON"),
    ({"images": []}, "no annotations, categories"),
    (coco_doc([ann(7, [1, 1, 5, 5], cat=3)]), r"annotation 7 \(image 1, 'a.png'\) has category_id 3.*\[5, 9\]"),
    (coco_doc([ann(8, [1, 1, 5])]), "annotation 8 .* four numbers"),
    (coco_doc([{"id": 9, "image_id": 4, "category_id": 5, "bbox": [1, 1, 2, 2]}]), "annotation 9 refers to image id 4"),
    (coco_doc([], images=[{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}]),
     "image id 1 appears twice"),
])
def test_bad_annotations_name_what(doc, match, tmp_path):
    path = write(tmp_path, doc)
    with pytest.raises(ValueError, match=match) as info:
        load_coco(path)
    assert "annotations.json" in str(info.value)
    assert os.path.exists(path)  # nothing deleted


def test_missing_and_unreadable_images(tmp_path):
    path = write(tmp_path, coco_doc([]), image=False)
    with pytest.raises(ValueError, match=r"'a.png' .* missing: not found in .*images"):
        load_coco(path)
    (tmp_path / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot be read"):
        load_coco(path)
    with pytest.raises(ValueError, match="no annotations.json"):
        load_coco(str(tmp_path / "images"))


def single(tmp_path, box=(20, 20, 60, 60)):
    x1, y1, x2, y2 = box
    return load_coco(write(tmp_path, coco_doc([ann(1, [x1, y1, x2 - x1, y2 - y1])])))


def test_map_of_hand_worked_cases(tmp_path, data):
    gt = single(tmp_path)
    # perfect: AP 1; a 40x40 box shifted 8 px has IoU 1280/1920 = 0.667: AP50 1, AP75 0, and
    # AP over the thresholds .50:.05:.95 is matched at .50, .55, .60, .65: 4/10
    assert coco_map(gt, [([[20, 20, 60, 60]], [1.0], [0])])["AP"] == pytest.approx(1.0)
    shifted = coco_map(gt, [([[20, 28, 60, 68]], [0.9], [0])])
    assert shifted["AP50"] == pytest.approx(1.0) and shifted["AP75"] == 0.0
    assert shifted["AP"] == pytest.approx(0.4, abs=1e-6)
    # wrong class: nothing found; no detections at all: zeros, no crash
    assert coco_map(gt, [([[20, 20, 60, 60]], [1.0], [1])])["AP"] == 0.0
    assert coco_map(gt, [([], [], [])])["AP"] == 0.0
    # the embedded set: perfect detections score 1, half-width shifts score in between
    back = load_coco(write_coco(tmp_path / "set", *data))
    perfect = coco_map(back, [(b, np.ones(len(b)), c) for b, c in zip(back.boxes, back.classes)])
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AP50"] == pytest.approx(1.0)
    moved = [(b + np.stack([(b[:, 2] - b[:, 0]) / 4, 0 * b[:, 0]] * 2, 1), np.ones(len(b)), c)
             for b, c in zip(back.boxes, back.classes)]
    partial = coco_map(back, moved)
    assert 0.0 < partial["AP"] < perfect["AP"]


def test_map_bad_detections(tmp_path):
    gt = single(tmp_path)
    with pytest.raises(ValueError, match="1 images"):
        coco_map(gt, [])
    with pytest.raises(ValueError, match="outside 0..1"):
        coco_map(gt, [([[1, 1, 5, 5]], [1.0], [4])])
    with pytest.raises(ValueError, match="must be equal"):
        coco_map(gt, [([[1, 1, 5, 5]], [1.0, 0.5], [0])])
