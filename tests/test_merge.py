import math

import numpy as np
import pytest
import torch

from universal_features.config import ModelConfig
from universal_features.merge import crossing_point, lerp, merge_points, merged_model, slerp, slerp_tensor
from universal_features.model import LanguageModel


def direct_slerp(t, a, b, eps=1e-8, thr=0.9995):
    "mergekit's formula written out in numpy float32."
    v0, v1 = a.numpy().astype(np.float32).ravel(), b.numpy().astype(np.float32).ravel()
    n0, n1 = np.linalg.norm(v0), np.linalg.norm(v1)
    u0 = v0 / n0 if n0 > eps else v0
    u1 = v1 / n1 if n1 > eps else v1
    dot = float(np.sum(u0 * u1))
    if abs(dot) > thr:
        return ((1 - t) * v0 + t * v1).reshape(a.shape)
    th = np.arccos(dot)
    return (np.sin((1 - t) * th) / np.sin(th) * v0 + np.sin(t * th) / np.sin(th) * v1).reshape(a.shape)


@pytest.mark.parametrize("t", [0.0, 0.05, 0.3, 0.58, 0.9, 1.0])
def test_agrees_with_direct_formula(t):
    g = torch.Generator().manual_seed(int(t * 100))
    a, b = torch.randn(37, 11, generator=g), torch.randn(37, 11, generator=g)
    out, info = slerp_tensor(t, a, b)
    assert info["branch"] == "slerp"
    assert np.allclose(out.numpy(), direct_slerp(t, a, b), atol=1e-6)


def test_endpoints_return_inputs_exactly():
    a, b = torch.randn(50, 20), torch.randn(50, 20)
    sd_a, sd_b = {"w": a, "v": b.clone()}, {"w": b, "v": a.clone()}
    for fn in (slerp, lerp):
        m0, _ = fn(sd_a, sd_b, 0.0)
        m1, _ = fn(sd_a, sd_b, 1.0)
        for k in sd_a:
            assert torch.equal(m0[k], sd_a[k]) and torch.equal(m1[k], sd_b[k])


def test_parallel_tensors_fall_back_to_lerp():
    a = torch.randn(100)
    out, info = slerp_tensor(0.3, a, 3 * a)
    assert info["branch"] == "lerp" and info["cosine"] > 0.9995
    assert torch.allclose(out, 0.7 * a + 0.9 * a)
    out, info = slerp_tensor(0.3, a, a + 0.01 * torch.randn(100))  # nearly parallel, as two gentle fine-tunes
    assert info["branch"] == "lerp"


def test_slerp_of_unit_vectors_stays_on_the_sphere():
    u, v = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    for t in np.linspace(0, 1, 11):
        out, info = slerp_tensor(float(t), u, v)
        assert math.isclose(out.norm().item(), 1.0, rel_tol=1e-6)
        assert info["angle_degrees"] == pytest.approx(90.0)


def test_different_shapes_are_a_clear_error():
    with pytest.raises(ValueError, match=r"w has shape \(3, 4\) in model 0 and \(4, 4\) in model 1"):
        slerp({"w": torch.zeros(3, 4)}, {"w": torch.zeros(4, 4)}, 0.5)
    with pytest.raises(ValueError, match="cannot merge"):
        lerp({"w": torch.zeros(3)}, {"u": torch.zeros(3)}, 0.5)
    small = LanguageModel(ModelConfig(d_model=16, n_heads=2, n_kv_heads=1, d_mlp=32), 50)
    big = LanguageModel(ModelConfig(d_model=32, n_heads=2, n_kv_heads=1, d_mlp=32), 50)
    with pytest.raises(ValueError, match="cannot merge"):
        merged_model(small, big, 0.5)


def test_crossing_point():
    ts = [0.0, 0.5, 1.0]
    assert crossing_point(ts, [0.6, 0.4, 0.2], [0.2, 0.3, 0.5]) == pytest.approx(0.5 + 0.5 * 0.1 / 0.4)
    assert crossing_point(ts, [1, 1, 1], [0, 0, 0]) is None


def test_paper_sweep_crosses_where_the_notes_say():
    from universal_features.merge import PAPER_SWEEP
    t = crossing_point([p[0] for p in PAPER_SWEEP], [p[1] for p in PAPER_SWEEP], [p[2] for p in PAPER_SWEEP])
    assert t == pytest.approx(0.570, abs=0.002)


def test_the_authors_merge_point_in_our_orientation():
    "mergekit t = 0.58 with the Lua fine-tune as base_model (t = 0 returns the base) is our SLERP at t = 0.42 from TinyStories."
    from universal_features.config import MergeConfig
    g = torch.Generator().manual_seed(1)
    tiny, lua = torch.randn(40, 9, generator=g), torch.randn(40, 9, generator=g)
    mergekit = direct_slerp(0.58, lua, tiny)                                   # their call: v0 = base = Lua, v1 = TinyStories
    ours, _ = slerp_tensor(MergeConfig().t, tiny, lua)                         # ours: t = 0 TinyStories, t = 1 Lua
    assert MergeConfig().t == 0.42 and np.allclose(ours.numpy(), mergekit, atol=1e-6)
    near = lua + 1e-4 * tiny                                                   # nearly parallel: mergekit's LERP branch, same reading
    assert np.allclose(slerp_tensor(0.42, near, lua)[0].numpy(), direct_slerp(0.58, lua, near), atol=1e-6)
    assert not np.allclose(slerp_tensor(0.58, tiny, lua)[0].numpy(), mergekit, atol=1e-3)   # the other reading is another model


def test_merge_points():
    assert merge_points(0.42, 0.805) == {"luastories": 0.42, "luastories_crossing": 0.805}
    assert merge_points(None, 0.6) == {"luastories": 0.6, "luastories_crossing": 0.6}      # merge.t = none: both at t*
    assert merge_points(0.42, None) == {"luastories": 0.42, "luastories_crossing": 0.5}     # the curves do not cross
