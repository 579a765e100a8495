"""Specs: block strings, rounding, scaling and the variant table (pure Python, no model)."""

from __future__ import annotations

import math

import pytest

from keras_efficientnet import specs
from keras_efficientnet.specs import (BlockSpec, compound_coefficients, format_block, get_spec,
                                      make_divisible, parse_block, resolve)


@pytest.mark.parametrize("name", sorted(specs.VARIANTS))
def test_block_strings_round_trip(name):
    spec = get_spec(name)
    for block in spec.blocks:
        assert parse_block(format_block(block)) == block
    assert specs.ModelSpec.from_dict(spec.to_dict()) == spec


def test_block_string_fields():
    block = parse_block("fu_r4_k3_s2_e4_c48_se0.25_arelu_noskip")
    assert block == BlockSpec("fu", 4, 3, 2, 4, 48, 0.25, activation="relu", skip=False)


@pytest.mark.parametrize("text", ["zz_r1_k3_s1_e1_c16", "mb_r1_k3_s1_e1", "mb_r1_k3_s1_e1_c16_q4",
                                  "mb_r0_k3_s1_e1_c16", "mb_r1_k3_s1_e1_c16_se2"])
def test_bad_block_strings(text):
    with pytest.raises(ValueError):
        parse_block(text)


def _keras_applications_round_filters(filters, width, divisor=8):
    # keras.applications V1's rule, restated from its documentation: nearest multiple of the
    # divisor, at least the divisor, bumped up when rounding down lost more than 10%.
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * filters else new)


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 4.3])
def test_make_divisible(width):
    for channels in (16, 24, 32, 40, 80, 112, 192, 320, 1280):
        value = make_divisible(channels * width)
        assert value == _keras_applications_round_filters(channels, width)
        assert value % 8 == 0 and value >= 0.9 * channels * width
    assert make_divisible(20, round_limit=0.0) == 24
    assert make_divisible(3.0, round_limit=0.0) == 8


def test_depth_scaling_and_names():
    r = resolve(get_spec("EfficientNetB7"))
    stage_counts = {}
    for block in r.blocks:
        stage_counts[block.stage] = stage_counts.get(block.stage, 0) + 1
    base = [b.repeats for b in get_spec("EfficientNetB0").blocks]
    assert [stage_counts[i] for i in range(7)] == [math.ceil(3.1 * n) for n in base]
    xl = resolve(get_spec("EfficientNetV2XL"))
    names = [b.name for b in xl.blocks]
    assert len(set(names)) == len(names) and "block6ab" in names  # >26 blocks in a stage


def test_drop_path_rises_linearly_over_scaled_blocks():
    r = resolve(get_spec("EfficientNetB3"), drop_path=0.3)
    rates = [b.drop_path for b in r.blocks]
    assert rates[0] == 0.0
    assert rates == pytest.approx([0.3 * i / len(rates) for i in range(len(rates))])


def test_compound_scaling():
    width, depth, resolution = compound_coefficients(3)
    assert width == pytest.approx(1.1 ** 3) and depth == pytest.approx(1.2 ** 3)
    assert resolution == 344  # 224 * 1.15**3 = 340.7, rounded to a multiple of 8
    spec = specs.compound_spec(0)
    assert resolve(spec) == resolve(get_spec("EfficientNetB0").replace(name=spec.name))


def test_unknown_variant_names_close_matches():
    with pytest.raises(ValueError, match="EfficientNetB0"):
        get_spec("EfficientNetB00")


def test_channel_overrides():
    spec = get_spec("EfficientNetB0").replace(channel_overrides={"block2a": 40})
    block = {b.name: b for b in resolve(spec).blocks}["block2a"]
    assert block.hidden_channels == 40
    with pytest.raises(ValueError, match="block9z"):
        resolve(get_spec("EfficientNetB0").replace(channel_overrides={"block9z": 8}))
    with pytest.raises(ValueError, match="no expansion"):
        resolve(get_spec("EfficientNetB0").replace(channel_overrides={"block1a": 8}))


def test_specs_import_no_keras():
    """specs/ is pure Python: none of its modules imports Keras."""
    import pathlib
    import re

    import keras_efficientnet.specs as pkg
    keras_import = re.compile(r"^\s*(from|import)\s+keras(\s|\.|$)", re.M)
    files = list(pathlib.Path(pkg.__file__).parent.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        assert not keras_import.search(path.read_text()), path
