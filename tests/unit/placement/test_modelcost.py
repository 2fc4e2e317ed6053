"""ModelCost from a config and tensor sizes: layers vs head, KV cache, wire bytes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.inference.config import ModelConfig
from reconciler.inference.loader import load_config
from reconciler.jobs.plans import tensor_sizes
from reconciler.placement.modelcost import activation_bytes, layer_of, model_cost

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"


def _config() -> ModelConfig:
    base = load_config(MODELS / "tiny-llama.gguf")
    return replace(base, n_layers=2, dim=576, n_kv_heads=3, head_dim=64)


def test_layer_tensors_in_both_spellings_and_the_rest_is_the_head() -> None:
    assert [layer_of(n) for n in ("blk.3.attn_q.weight", "model.layers.12.mlp.up_proj.weight")] == [
        3,
        12,
    ]
    assert layer_of("token_embd.weight") is None and layer_of("lm_head.weight") is None
    assert layer_of("model.norm.weight") is None and layer_of("blk_3.weight") is None


def test_costs_add_up_from_the_sizes() -> None:
    sizes = {
        "blk.0.attn_q.weight": 600,
        "blk.0.ffn_up.weight": 400,
        "blk.1.attn_q.weight": 700,
        "blk.1.ffn_up.weight": 300,
        "token_embd.weight": 5000,
        "output_norm.weight": 24,
        "blk.9.stray.weight": 10**9,  # a layer the config does not have: not costed
    }
    cost = model_cost(_config(), sizes, positions=100)
    assert (cost.n_layers, cost.layer_bytes, cost.head_bytes) == (2, 1000, 5024)
    assert cost.total_bytes == 7024
    assert cost.kv_bytes_per_layer == 2 * 3 * 64 * 100 * 4  # keys and values, float32
    assert cost.activation_bytes == 576 * 4


def test_q80_activations_are_about_four_times_smaller() -> None:
    assert activation_bytes(576, "q80") == 18 * 34
    assert activation_bytes(576, "f32") == 2304
    assert activation_bytes(33, "q80") == 2 * 34  # the last block is padded
    cost = model_cost(_config(), {}, positions=0, wire="q80")
    assert cost.activation_bytes == 612 and cost.kv_bytes_per_layer == 2 * 3 * 64 * 4


def test_a_real_file_s_tensors_are_all_costed() -> None:
    for name in ("tiny-llama.gguf", "tiny-qwen2-hf"):
        path = MODELS / name
        sizes = tensor_sizes(path)
        cost = model_cost(load_config(path), sizes, positions=16)
        assert cost.layer_bytes > 0 and cost.head_bytes > 0
        assert abs(cost.total_bytes - sum(sizes.values())) < cost.n_layers  # mean rounds up
