"""What a share takes once loaded, estimated from the file's tensor records alone
(``quant.layout`` through ``jobs.plans.held_sizes``), against what a real load holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as Q

from reconciler.inference.kernels.fused import FusedShard
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.quant.layout import bytes_per_weight
from reconciler.inference.sharding import full_share
from reconciler.jobs.plans import held_sizes, tensor_records


@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-gemma3.gguf"])
@pytest.mark.parametrize("layout", ["exact", "int8"])
def test_estimate_equals_the_bytes_a_real_load_holds(
    models_dir: Path, name: str, layout: str
) -> None:
    """Q4_0, Q4_1, Q8_0 and BF16 matrices (tiny-llama), Q5_0, Q8_0 and F16 (tiny-gemma3)."""
    path = models_dir / name
    info = load_model_info(path)
    shard = load_shard(path, info.config, full_share(info.config), None, "onnxruntime", layout, 1)
    assert isinstance(shard, FusedShard) and shard.int8 == (layout == "int8")
    sizes = held_sizes(tensor_records(path), layout)
    matrices = sum(n for r in tensor_records(path) if r.rank == 2 for n in [sizes[r.name]])
    assert shard.nbytes() - shard.norm.nbytes == matrices


def test_layouts_differ_where_the_kernels_differ() -> None:
    """int8 keeps a block sum more than exact on 4-bit codes, and one byte where exact
    splits 8-bit codes into two nibble halves; numpy holds float32."""
    assert bytes_per_weight(Q.Q4_0, "exact") == 0.625  # file: 0.5625
    assert bytes_per_weight(Q.Q4_0, "int8") == 0.75
    assert bytes_per_weight(Q.Q4_K, "exact") == 0.75  # + a float32 offset per 32
    assert bytes_per_weight(Q.Q8_0, "exact") == 1.375
    assert bytes_per_weight(Q.Q8_0, "int8") == 1.25
    assert bytes_per_weight(Q.Q6_K, "int8") == 1.5  # scales per 16 weights
    assert bytes_per_weight(Q.Q4_0, "numpy") == bytes_per_weight(Q.F16, "exact") == 4.0
    # ggml: every format as the file stores it
    assert bytes_per_weight(Q.Q4_0, "ggml") == 0.5625
    assert bytes_per_weight(Q.Q4_K, "ggml") == 144 / 256
    assert bytes_per_weight(Q.Q6_K, "ggml") == 210 / 256
    assert bytes_per_weight(Q.F16, "ggml") == bytes_per_weight(Q.BF16, "ggml") == 2.0
    with pytest.raises(ValueError, match="unknown layout 'int4'"):
        bytes_per_weight(Q.Q4_0, "int4")


def test_a_quantized_embedding_costs_nothing_up_front_unless_it_is_the_head(
    models_dir: Path,
) -> None:
    """tiny-llama has an LM head of its own: its Q8_0 embedding stays mapped. tiny-gemma3
    ties them: the head holds the embedding's rows in the kernel's layout."""
    for name, held in (("tiny-llama.gguf", False), ("tiny-gemma3.gguf", True)):
        records = tensor_records(models_dir / name)
        embed = next(r for r in records if r.name == "token_embd.weight")
        assert embed.qtype == Q.Q8_0
        exact, numpy = held_sizes(records, "exact"), held_sizes(records, "numpy")
        assert exact[embed.name] == (round(1.375 * embed.n_weights) if held else 0)
        assert numpy[embed.name] == 4 * embed.n_weights  # dequantized at load
