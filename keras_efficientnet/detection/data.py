"""Detection data: an embedded box data set, COCO-format annotations in and out, COCO mAP.

:func:`pasted_boxes` turns the segmentation package's pasted-objects photos
(:func:`keras_efficientnet.segmentation.datasets.pasted_objects`: horse and coin cutouts pasted
on scikit-image's real photos) into a detection set: one box per pasted object, drawn tight
around the part of it that is still visible after later objects covered it. Class ids are 0
(horse) and 1 (coin); detection has no background class.

:func:`load_coco` reads COCO detection annotations (``annotations.json`` + an image folder)
with every problem either refused with a message naming the file and the annotation, or
skipped and counted in ``skipped`` with its reason; :func:`write_coco` writes the same layout.
:func:`coco_map` scores detections with pycocotools' ``COCOeval`` (the reference evaluator).
Boxes are pixel ``[x1, y1, x2, y2]`` everywhere in this package; COCO's ``[x, y, w, h]`` is
converted at the file boundary.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import NamedTuple

import numpy as np

#: Class names of :func:`pasted_boxes`, by detection class id.
CLASS_NAMES = ("horse", "coin")
#: The 12 summary statistics of pycocotools' ``COCOeval.summarize()``, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
              "ARl")


class DetectionSet(NamedTuple):
    """Images with their boxes: ``images`` uint8 ``(N, H, W, 3)``; ``boxes`` a list of float32
    ``(n_i, 4)`` pixel ``[x1, y1, x2, y2]``; ``classes`` a list of int32 ``(n_i,)``."""

    images: np.ndarray
    boxes: list
    classes: list
    class_names: tuple


class CocoData(NamedTuple):
    """What :func:`load_coco` read. ``classes`` are contiguous ids ``0..K-1`` (categories in
    ascending COCO id order); ``category_ids[k]`` is class ``k``'s COCO id; ``skipped`` lists
    each annotation left out or changed, with the reason."""

    images: list
    boxes: list
    classes: list
    class_names: tuple
    file_names: list
    image_ids: list
    category_ids: tuple
    skipped: list


def pasted_boxes(count=64, image_size=128, seed=0, max_objects=3, min_area=16) -> DetectionSet:
    """An embedded detection set from real photos: horses and coins with their boxes.

    Args:
        count: number of images.
        image_size: side of the square images, a multiple of 128 (EfficientDet's inputs).
        seed: the same seed gives the same set.
        max_objects: each image gets 1 to ``max_objects`` pasted objects.
        min_area: objects with fewer visible pixels get no box (they are hidden).

    Returns:
        A :class:`DetectionSet`.

    Example:
        >>> from keras_efficientnet.detection.data import pasted_boxes
        >>> data = pasted_boxes(2, 128, seed=0)
        >>> data.images.shape, data.boxes[0].shape[1], data.class_names
        ((2, 128, 128, 3), 4, ('horse', 'coin'))
    """
    from ..segmentation.datasets import pasted_objects

    size = int(image_size)
    if size < 128 or size % 128:
        raise ValueError(f"image_size must be a positive multiple of 128 (EfficientDet inputs), "
                         f"got {image_size}.")
    if int(count) < 1:
        raise ValueError(f"count must be a positive integer, got {count}.")
    images, masks, _, instances = pasted_objects(int(count), size, seed, max_objects,
                                                 return_instances=True)
    all_boxes, all_classes = [], []
    for mask, inst in zip(masks, instances):
        boxes, classes = [], []
        for k in range(1, int(inst.max()) + 1):
            rows, cols = np.nonzero(inst == k)
            if rows.size < min_area:
                continue
            boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
            classes.append(int(mask[rows[0], cols[0]]) - 1)
        all_boxes.append(np.asarray(boxes, "float32").reshape(-1, 4))
        all_classes.append(np.asarray(classes, "int32"))
    return DetectionSet(images, all_boxes, all_classes, CLASS_NAMES)


def write_coco(directory, images, boxes, classes, class_names, prefix="img") -> str:
    """Write images and boxes as a COCO detection folder: ``images/*.png`` and
    ``annotations.json`` (category ids from 1); returns the json's path.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.detection.data import load_coco, pasted_boxes, write_coco
        >>> data = pasted_boxes(2, 128)
        >>> path = write_coco(tempfile.mkdtemp(), *data)
        >>> back = load_coco(path)
        >>> bool((back.boxes[0] == data.boxes[0]).all()), back.class_names
        (True, ('horse', 'coin'))
    """
    from PIL import Image

    directory = os.fspath(directory)
    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    doc = {"images": [], "annotations": [],
           "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]}
    for i, (image, bxs, cls) in enumerate(zip(images, boxes, classes)):
        name = f"{prefix}_{i:05d}.png"
        Image.fromarray(np.asarray(image, "uint8")).save(os.path.join(directory, "images", name))
        h, w = np.shape(image)[:2]
        doc["images"].append({"id": i + 1, "file_name": name, "width": int(w), "height": int(h)})
        for (x1, y1, x2, y2), c in zip(np.asarray(bxs, "float64").reshape(-1, 4), cls):
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0})
    path = os.path.join(directory, "annotations.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return path


def _locate(path_or_dir, image_dir):
    path = os.fspath(path_or_dir)
    if os.path.isdir(path):
        folder, path = path, os.path.join(path, "annotations.json")
        if not os.path.isfile(path):
            raise ValueError(f"{folder!r} has no annotations.json: pass the COCO json file, or a "
                             "folder holding annotations.json and images/.")
    elif not os.path.isfile(path):
        raise ValueError(f"COCO annotation file {path!r} does not exist.")
    if image_dir is None:
        here = os.path.dirname(os.path.abspath(path))
        image_dir = os.path.join(here, "images")
        image_dir = image_dir if os.path.isdir(image_dir) else here
    return path, os.fspath(image_dir)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path!r} is not a COCO annotation file (not valid JSON: {err}).") from None
    missing = [k for k in ("images", "annotations", "categories")
               if not isinstance(doc, dict) or not isinstance(doc.get(k), list)]
    if missing:
        raise ValueError(f"{path!r} is not a COCO detection file: it has no "
                         f"{', '.join(missing)} list (a COCO file holds images, annotations and "
                         "categories).")
    return doc


def _read_image(path, file_name, image_dir):
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise ValueError(f"Image {file_name!r} of the annotations is missing: not found in "
                         f"{image_dir!r}. Pass image_dir= the folder that holds the images.")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"Image {path!r} cannot be read ({err}); replace or remove it.") from None


def load_coco(path_or_dir, image_dir=None) -> CocoData:
    """Read COCO detection annotations and their images, checked.

    Args:
        path_or_dir: the json file, or a folder holding ``annotations.json`` (and ``images/``).
        image_dir: where the ``file_name`` paths are; default the ``images`` folder beside the
            json if there is one, else the json's folder.

    Returns:
        A :class:`CocoData`. Images without annotations stay (negatives, with ``(0, 4)``
        boxes). Crowd boxes (``iscrowd=1``), boxes wholly outside their image or empty are
        skipped, boxes partly outside are clipped; each such case has a line in ``skipped``.

    Raises:
        ValueError: naming the file, image or annotation, for a file that is not COCO JSON,
            duplicate image ids, an annotation of an unknown image or category, a bbox that is
            not four numbers, and a missing or unreadable image.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.detection.data import load_coco, pasted_boxes, write_coco
        >>> folder = tempfile.mkdtemp()
        >>> _ = write_coco(folder, *pasted_boxes(3, 128))
        >>> data = load_coco(folder)
        >>> len(data.images), data.category_ids, data.skipped
        (3, (1, 2), [])
    """
    path, image_dir = _locate(path_or_dir, image_dir)
    doc = _read_json(path)
    cats = {}
    for c in doc["categories"]:
        if not isinstance(c, dict) or "id" not in c:
            raise ValueError(f"{path!r}: a category has no id: {c!r}.")
        cats[c["id"]] = str(c.get("name", c["id"]))
    category_ids = tuple(sorted(cats))
    contiguous = {cid: k for k, cid in enumerate(category_ids)}
    entries, order = {}, []
    for im in doc["images"]:
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise ValueError(f"{path!r}: an image entry has no id or file_name: {im!r}.")
        if im["id"] in entries:
            raise ValueError(f"{path!r}: image id {im['id']} appears twice ({entries[im['id']]['file_name']!r} "
                             f"and {im['file_name']!r}); image ids must be unique.")
        entries[im["id"]] = im
        order.append(im["id"])
    images = {i: _read_image(os.path.join(image_dir, entries[i]["file_name"]),
                             entries[i]["file_name"], image_dir) for i in order}
    boxes = {i: [] for i in order}
    classes = {i: [] for i in order}
    skipped = []
    for ann in doc["annotations"]:
        aid = ann.get("id") if isinstance(ann, dict) else None
        if not isinstance(ann, dict) or ann.get("image_id") not in entries:
            raise ValueError(f"{path!r}: annotation {aid} refers to image id "
                             f"{ann.get('image_id') if isinstance(ann, dict) else None}, which is "
                             "not among the images.")
        image_id, name = ann["image_id"], entries[ann["image_id"]]["file_name"]
        if ann.get("category_id") not in cats:
            raise ValueError(f"{path!r}: annotation {aid} (image {image_id}, {name!r}) has "
                             f"category_id {ann.get('category_id')!r}, which is not among the "
                             f"categories {list(category_ids)}. Add it to categories or fix the "
                             "annotation.")
        bbox = ann.get("bbox")
        if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            raise ValueError(f"{path!r}: annotation {aid} ({name!r}) has bbox {bbox!r}; COCO "
                             "boxes are four numbers [x, y, width, height].")
        if ann.get("iscrowd", 0):
            skipped.append(f"annotation {aid} ({name}): iscrowd=1, crowd regions are not "
                           "trained on")
            continue
        h, w = images[image_id].shape[:2]
        x, y, bw, bh = (float(v) for v in bbox)
        x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))
        if x2 <= x1 or y2 <= y1:
            skipped.append(f"annotation {aid} ({name}): box {list(bbox)} is empty or outside "
                           f"the {w}x{h} image")
            continue
        if (x1, y1, x2, y2) != (x, y, x + bw, y + bh):
            skipped.append(f"annotation {aid} ({name}): box {list(bbox)} clipped to the {w}x{h} "
                           "image")
        boxes[image_id].append([x1, y1, x2, y2])
        classes[image_id].append(contiguous[ann["category_id"]])
    return CocoData(
        images=[images[i] for i in order],
        boxes=[np.asarray(boxes[i], "float32").reshape(-1, 4) for i in order],
        classes=[np.asarray(classes[i], "int32") for i in order],
        class_names=tuple(cats[c] for c in category_ids),
        file_names=[entries[i]["file_name"] for i in order], image_ids=order,
        category_ids=category_ids, skipped=skipped)


def _ground_truth(gt: CocoData):
    from pycocotools.coco import COCO

    doc = {"images": [], "annotations": [],
           "categories": [{"id": c, "name": n} for c, n in zip(gt.category_ids, gt.class_names)]}
    for image_id, image, bxs, cls in zip(gt.image_ids, gt.images, gt.boxes, gt.classes):
        h, w = np.shape(image)[:2]
        doc["images"].append({"id": image_id, "width": int(w), "height": int(h)})
        for (x1, y1, x2, y2), c in zip(np.asarray(bxs, "float64"), cls):
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": image_id,
                "category_id": gt.category_ids[int(c)], "iscrowd": 0,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_map(gt, detections) -> dict:
    """COCO box mAP of ``detections`` against ``gt``, computed by pycocotools' ``COCOeval``.

    Args:
        gt: a :class:`CocoData` (or a path :func:`load_coco` reads).
        detections: one ``(boxes, scores, classes)`` per image of ``gt``, in its order: pixel
            ``[x1, y1, x2, y2]`` boxes, scores, contiguous class ids.

    Returns:
        ``{"AP": ..., "AP50": ..., ..., "ARl": ...}``: the 12 numbers of ``COCOeval.summarize``
        (-1 where pycocotools has nothing to average, e.g. no small objects).

    Example:
        >>> from keras_efficientnet.detection.data import coco_map, load_coco, pasted_boxes, write_coco
        >>> import tempfile
        >>> gt = load_coco(write_coco(tempfile.mkdtemp(), *pasted_boxes(2, 128)))
        >>> perfect = [(b, [1.0] * len(b), c) for b, c in zip(gt.boxes, gt.classes)]
        >>> round(coco_map(gt, perfect)["AP"], 3)
        1.0
    """
    from pycocotools.cocoeval import COCOeval

    if not isinstance(gt, CocoData):
        gt = load_coco(gt)
    detections = list(detections)
    if len(detections) != len(gt.images):
        raise ValueError(f"detections has {len(detections)} entries for {len(gt.images)} images; "
                         "give one (boxes, scores, classes) per image, in the ground truth's order.")
    results = []
    for image_id, (bxs, scores, cls) in zip(gt.image_ids, detections):
        bxs = np.asarray(bxs, "float64").reshape(-1, 4)
        scores, cls = np.asarray(scores, "float64").ravel(), np.asarray(cls).ravel().astype(int)
        if not len(bxs) == len(scores) == len(cls):
            raise ValueError(f"image {image_id}: {len(bxs)} boxes, {len(scores)} scores and "
                             f"{len(cls)} classes; they must be equal.")
        bad = cls[(cls < 0) | (cls >= len(gt.category_ids))]
        if bad.size:
            raise ValueError(f"image {image_id}: class ids {sorted(set(bad.tolist()))} are outside "
                             f"0..{len(gt.category_ids) - 1}.")
        for (x1, y1, x2, y2), s, c in zip(bxs, scores, cls):
            results.append({"image_id": image_id, "category_id": gt.category_ids[c],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)})
    if not results:  # pycocotools cannot load an empty result list: nothing found scores 0
        return {name: 0.0 for name in STAT_NAMES}
    coco = _ground_truth(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}
