"""Pure-numpy tensor-parallel inference for llama-family models (llama, mistral, qwen2).

Public API used by the Job controller::

    info = load_model_info(path)                    # config, tokenizer, chat template
    shares = plan_shares(info.config, column_ranges, shard_columns)  # tensor parallel
    # or: shares = plan_stages(info.config, layer_counts)           # pipeline stages
    weights = load_shard(path, info.config, shares[rank])
    engine = Engine(info.config, weights, collectives)
    for event in engine.generate(prompt_ids, SamplingParams(...), info.tokenizer): ...
"""

from reconciler.inference.collectives import Collectives, SingleRank
from reconciler.inference.config import ModelConfig
from reconciler.inference.demo import demo_model_path
from reconciler.inference.errors import CollectiveError, ModelError, WireError
from reconciler.inference.generate import TokenEvent, generate
from reconciler.inference.inprocess import InProcessGroup
from reconciler.inference.loader import ModelInfo, load_config, load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import RankShare, full_share, plan_shares, plan_stages
from reconciler.inference.tokenizer import Tokenizer
from reconciler.inference.weights import ShardWeights

__all__ = [
    "CollectiveError",
    "Collectives",
    "Engine",
    "InProcessGroup",
    "ModelConfig",
    "ModelError",
    "ModelInfo",
    "RankShare",
    "SamplingParams",
    "ShardWeights",
    "SingleRank",
    "TokenEvent",
    "Tokenizer",
    "WireError",
    "demo_model_path",
    "full_share",
    "generate",
    "load_config",
    "load_model_info",
    "load_shard",
    "plan_shares",
    "plan_stages",
]
