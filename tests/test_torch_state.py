"""The one PyTorch state-dict reader every PyTorch converter uses (pretrained/convert/torch_state.py):
the same file forms accepted the same way for timm, torchvision and efficientnet_pytorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # before TensorFlow (conftest imports keras): torchvision/torch after TF segfaults

from keras_efficientnet.pretrained.convert import efficientnet_pytorch, timm as timm_conv, torchvision
from keras_efficientnet.pretrained.convert.torch_state import read_state_dict

RAW = {"conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2),
       "bn.running_var": torch.full((2,), 2.0), "bn.num_batches_tracked": torch.tensor(7)}
EMA = {k: v + 1 if v.is_floating_point() else v for k, v in RAW.items()}


class Payload:
    """Pickled by torch.save as code to run; weights_only refuses to unpickle it."""


def _save(path, obj, **kw):
    torch.save(obj, path, **kw)
    return str(path)


def test_bare_state_dict_values_and_dtypes(tmp_path):
    state = read_state_dict(_save(tmp_path / "a.pth", RAW))
    assert sorted(state) == sorted(RAW)
    np.testing.assert_array_equal(state["conv.weight"], RAW["conv.weight"].numpy())
    assert state["conv.weight"].dtype == np.float32
    assert state["bn.num_batches_tracked"].dtype.kind == "i"
    assert state.wrapper is None and state.arch is None


def test_checkpoint_prefers_ema_like_timm(tmp_path):
    path = _save(tmp_path / "ckpt.pth", {"epoch": 4, "arch": "efficientnet_b0",
                                          "state_dict": RAW, "state_dict_ema": EMA})
    state = read_state_dict(path)
    assert state.wrapper == "state_dict_ema" and state.arch == "efficientnet_b0"
    np.testing.assert_array_equal(state["conv.weight"], EMA["conv.weight"].numpy())
    only_model = read_state_dict(_save(tmp_path / "m.pth", {"model": RAW, "optimizer": {}}))
    assert only_model.wrapper == "model"
    np.testing.assert_array_equal(only_model["conv.weight"], RAW["conv.weight"].numpy())


def test_dataparallel_prefix_removed_only_when_uniform(tmp_path):
    prefixed = {f"module.{k}": v for k, v in RAW.items()}
    assert sorted(read_state_dict(_save(tmp_path / "p.pth", prefixed))) == sorted(RAW)
    mixed = {"module.a": torch.ones(1), "b": torch.ones(1)}
    assert sorted(read_state_dict(_save(tmp_path / "q.pth", mixed))) == ["b", "module.a"]


def test_legacy_pickle_format_bfloat16_and_float64(tmp_path):
    obj = {"w16": torch.ones(3, dtype=torch.bfloat16), "w64": torch.ones(3, dtype=torch.float64)}
    state = read_state_dict(_save(tmp_path / "old.pth", obj, _use_new_zipfile_serialization=False))
    assert state["w16"].dtype == np.float32 and state["w64"].dtype == np.float32


def test_safetensors_and_its_arch_metadata(tmp_path):
    from safetensors.torch import save_file

    path = str(tmp_path / "model.safetensors")
    save_file({k: v for k, v in RAW.items()}, path, metadata={"arch": "tf_efficientnet_b0"})
    state = read_state_dict(path)
    assert state.arch == "tf_efficientnet_b0"
    np.testing.assert_array_equal(state["bn.running_var"], [2.0, 2.0])


def test_in_memory_mapping(tmp_path):
    state = read_state_dict({"state_dict_ema": EMA, "state_dict": RAW})
    assert state.source == "state dict" and state.wrapper == "state_dict_ema"


@pytest.mark.parametrize("obj,match", [([1, 2, 3], "holds a list, not a state dict"),
                                       ({"epoch": 3}, "holds no tensors")])
def test_not_a_state_dict(tmp_path, obj, match):
    with pytest.raises(ValueError, match=match):
        read_state_dict(_save(tmp_path / "x.pth", obj))


def test_truncated_and_code_pickling_files_are_refused(tmp_path):
    good = _save(tmp_path / "good.pth", RAW)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(open(good, "rb").read()[:200])
    with pytest.raises(ValueError, match=r"cut\.pth.*weights_only=True"):
        read_state_dict(str(cut))

    with pytest.raises(ValueError, match="weights_only=True"):  # an object of an arbitrary class
        read_state_dict(_save(tmp_path / "code.pth", {"w": torch.ones(1), "obj": Payload()}))


def test_every_converter_reads_through_it(tmp_path):
    """The three sources' readers are the shared one: same wrapped, prefixed file, same tensors."""
    path = _save(tmp_path / "ckpt.pth", {"state_dict_ema": {f"module.{k}": v for k, v in EMA.items()},
                                          "state_dict": RAW})
    expected = read_state_dict(path)
    for reader in (timm_conv.load_state_dict, torchvision.load_state_dict,
                   efficientnet_pytorch.load_state_dict):
        got = reader(path)
        assert sorted(got) == sorted(expected)
        np.testing.assert_array_equal(got["conv.weight"], EMA["conv.weight"].numpy())
