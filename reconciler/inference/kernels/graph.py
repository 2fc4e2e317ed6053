"""Build small onnxruntime graphs around ``MatMulNBits``: one graph per fused block.

A :class:`GraphBuilder` collects nodes and initializers with ``onnx.helper``; every
value is ``[T, width]`` float32 with a free token dimension ``T``. ``linear`` applies a
list of :class:`~reconciler.inference.quant.pack.NBits` (or dense float32) parts whose
outputs concatenate, adding the per-block offset term (a ``Gemm``, or with int8
activations the kernel's own digit blocks over ``[x | block sums]``) and an optional bias.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from reconciler.inference.quant.blocks import F32
from reconciler.inference.quant.buffers import PLACEHOLDER, lendable
from reconciler.inference.quant.pack import NBits

Part = NBits | F32  # a dense part is float32 [N, K]
OPSET = 21
_MS = "com.microsoft"


class GraphBuilder:
    """Nodes, initializers, inputs and outputs of one graph."""

    def __init__(self, int8_activations: bool) -> None:
        self.accuracy = 4 if int8_activations else 0
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._ids = itertools.count()
        self._memo: dict[tuple[str, Any], str] = {}
        self._sums: dict[str, int] = {}  # output of an ``add`` -> its node's index
        self.external: dict[str, np.ndarray[Any, Any]] = {}  # weights handed over in memory

    def fresh(self, stem: str) -> str:
        """A new value name."""
        return f"{stem}_{next(self._ids)}"

    def input(self, name: str, width: int) -> str:
        """Declare a float32 input ``[T, width]``."""
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["T", width]))
        return name

    def declare(self, name: str, elem_type: int, shape: list[Any]) -> str:
        """Declare an input of any type and shape."""
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def attention(
        self,
        qkv: str,
        heads: int,
        kv_heads: int,
        head_dim: int,
        layer: int,
        window: int = 0,
        **attrs: Any,
    ) -> str:
        """Causal GQA with RoPE and the KV cache (``GroupQueryAttention``) on packed QKV
        ``[T, (H + 2K) E]`` -> ``[T, H E]``.

        Inputs it adds: ``past_k{layer}``/``past_v{layer}`` ``[1, K, S, E]`` (bound to the
        same buffers as the outputs ``present_k{layer}``/``present_v{layer}``, so the cache
        is written in place) and, once per graph, ``seqlens_k`` ``[1]`` (positions after
        this step, minus one), ``total_len`` and the RoPE tables ``cos``/``sin``
        ``[S, E/2]`` (half-split layout).

        ``window`` > 0 (a sliding layer): a query at position p sees only the keys
        p - window < k <= p, rotated with the local RoPE tables ``cos_local``/``sin_local``
        (inputs added once per graph). GQA's ``local_window_size`` counts the same keys,
        the query's own included (checked against ``layers.attention`` by the tests)."""
        f, i32 = TensorProto.FLOAT, TensorProto.INT32
        past = [f"past_k{layer}", f"past_v{layer}"]
        present = [f"present_k{layer}", f"present_v{layer}"]
        for name in past:
            self.declare(name, f, [1, kv_heads, "S", head_dim])
        if ("shared", "attention") not in self._memo:
            self._memo["shared", "attention"] = "declared"
            self.declare("seqlens_k", i32, [1])
            self.declare("total_len", i32, [])
            for name in ("cos", "sin"):
                self.declare(name, f, ["S", head_dim // 2])
        tables = ["cos", "sin"]
        if window > 0:
            tables = ["cos_local", "sin_local"]
            if ("shared", "local") not in self._memo:
                self._memo["shared", "local"] = "declared"
                for name in tables:
                    self.declare(name, f, ["S", head_dim // 2])
            attrs["local_window_size"] = window
        axes = self.const(np.array([0], dtype=np.int64), "axes")
        q3 = self.op("Unsqueeze", [self._with_scratch_row(qkv), axes])
        out = self.fresh("att")
        inputs = [q3, "", "", *past, "seqlens_k", "total_len", *tables]
        node = helper.make_node(
            "GroupQueryAttention", inputs, [out, *present], domain=_MS,
            num_heads=heads, kv_num_heads=kv_heads, do_rotary=1, rotary_interleaved=0, **attrs,
        )  # fmt: skip
        self.nodes.append(node)
        for name in present:
            vi = helper.make_tensor_value_info(name, f, [1, kv_heads, "S", head_dim])
            self.outputs.append(vi)
        return self._without_scratch_row(self.op("Squeeze", [out, axes]))

    def _with_scratch_row(self, x: str) -> str:
        """``[T, W]`` -> ``[T + 1, W]``: the last row again, as a scratch position.

        ``GroupQueryAttention`` takes another code path for one query row than for
        several, and the two differ in the last bit. A speculative verify pass feeds
        several rows where plain decoding feeds one; with int8 activations a last-bit
        difference can move a quantization step and then a near-tie argmax. With the
        scratch row every pass has at least two rows, so a row's result does not depend
        on how many rows share its pass. The scratch row comes last and attention is
        causal, so no real row sees it; its key and value land one slot past the pass
        (the engine's cache has that slot) and the next pass overwrites them."""
        starts = self.const(np.array([-1], dtype=np.int64), "start")
        ends = self.const(np.array([np.iinfo(np.int64).max], dtype=np.int64), "end")
        axes = self.const(np.array([0], dtype=np.int64), "axes")
        last = self.op("Slice", [x, starts, ends, axes])
        return self.op("Concat", [x, last], axis=0)

    def _without_scratch_row(self, x: str) -> str:
        """``[T + 1, W]`` -> ``[T, W]``."""
        starts = self.const(np.array([0], dtype=np.int64), "start")
        ends = self.const(np.array([-1], dtype=np.int64), "end")
        axes = self.const(np.array([0], dtype=np.int64), "axes")
        return self.op("Slice", [x, starts, ends, axes])

    def head_norms(
        self, qkv: str, groups: list[tuple[int, F32 | None]], head_dim: int, eps: float
    ) -> str:
        """Per-head RMSNorm (QK-norm) on packed ``[T, sum(heads) E]`` columns: each group
        of ``heads`` heads normed with its ``[E]`` weight, or passed through (None)."""
        sizes = self.const(np.array([h * head_dim for h, _ in groups], dtype=np.int64), "split")
        pieces = [self.fresh("heads") for _ in groups]
        self.nodes.append(helper.make_node("Split", [qkv, sizes], pieces, axis=-1))
        out = []
        for piece, (heads, weight) in zip(pieces, groups, strict=True):
            if weight is None or heads == 0:
                out.append(piece)
                continue
            shape = self.const(np.array([-1, heads, head_dim], dtype=np.int64), "shape")
            normed = self.rms_norm(self.op("Reshape", [piece, shape]), weight, eps)
            flat = self.const(np.array([-1, heads * head_dim], dtype=np.int64), "shape")
            out.append(self.op("Reshape", [normed, flat]))
        return self.op("Concat", out, axis=-1)

    def output(self, value: str, name: str, width: int) -> None:
        """Expose ``value`` as the output ``name`` (``[T, width]``)."""
        self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["T", width]))

    def const(self, array: np.ndarray[Any, Any], stem: str = "w", big: bool = False) -> str:
        """An initializer holding ``array``; ``big`` ones are not copied into the model
        but lent to the session in memory (``session.make_session``): the model names a
        placeholder file for them."""
        name = self.fresh(stem)
        if not big:
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
            return name
        array = lendable(array)  # in its own pages (a no-op for packed weights)
        t = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
        t.dims.extend(array.shape)
        t.data_location = TensorProto.EXTERNAL
        for key, value in (
            ("location", PLACEHOLDER),
            ("offset", "0"),
            ("length", str(array.nbytes)),
        ):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        self.inits.append(t)
        self.external[name] = array
        return name

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        """Add one node; its single output's name."""
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], domain=domain, **attrs))
        return out

    def add(self, a: str, b: str) -> str:
        """a + b, both ``[T, width]`` (a residual; a later norm of it fuses with it)."""
        out = self.op("Add", [a, b])
        self._sums[out] = len(self.nodes) - 1
        return out

    def rms_norm(self, x: str, weight: F32, eps: float) -> str:
        """x / sqrt(mean(x^2) + eps) * weight.

        The norm of a residual sum ``a + b`` (made by :meth:`add`) replaces that Add:
        ``SkipSimplifiedLayerNormalization`` gives both the sum (same name) and its norm,
        one node and one pass over the row instead of two."""
        w = self.const(weight.astype(np.float32), "norm")
        index = self._sums.pop(x, None)
        if index is None:
            return self.op("SimplifiedLayerNormalization", [x, w], axis=-1, epsilon=eps)
        a, b = self.nodes[index].input
        out = self.fresh("skipnorm")
        self.nodes[index] = helper.make_node(
            "SkipSimplifiedLayerNormalization", [a, b, w], [out, "", "", x], domain=_MS,
            epsilon=eps,
        )  # fmt: skip
        return out

    def silu_mul(self, gate_up: str, width: int) -> str:
        """silu(gate) * up for ``[gate | up]`` of ``2 * width`` columns."""
        gate, up = self._split(gate_up, width)
        return self.op("Mul", [self.op("Mul", [gate, self.op("Sigmoid", [gate])]), up])

    def gelu_tanh_mul(self, gate_up: str, width: int) -> str:
        """gelu_tanh(gate) * up (GeGLU)."""
        gate, up = self._split(gate_up, width)
        return self.op("Mul", [self.op("Gelu", [gate], approximate="tanh"), up])

    def _split(self, value: str, width: int) -> tuple[str, str]:
        sizes = self.const(np.array([width, width], dtype=np.int64), "split")
        a, b = self.fresh("gate"), self.fresh("up")
        self.nodes.append(helper.make_node("Split", [value, sizes], [a, b], axis=-1))
        return a, b

    def linear(self, x: str, parts: list[Part], bias: F32 | None = None) -> str:
        """x @ W.T for W the row-concatenation of ``parts`` (+ bias)."""
        outs = [self._part(x, p) for p in parts]
        y = outs[0] if len(outs) == 1 else self.op("Concat", outs, axis=-1)
        if bias is not None:
            y = self.op("Add", [y, self.const(bias.astype(np.float32), "bias")])
        return y

    def _part(self, x: str, p: Part) -> str:
        if not isinstance(p, NBits):
            return self.op("MatMul", [x, self.const(p.T, "dense", big=True)])
        a = x if p.repeat == 1 else self._memo_op(("repeat", x), "Concat", [x, x], axis=-1)
        if p.digits:
            a = self._with_digit_sums(x, p)
        b, s = (
            self.const(p.packed, "q", big=True),
            self.const(p.scales.reshape(-1), "scale", big=True),
        )
        y = self.op(
            "MatMulNBits", [a, b, s], domain=_MS, K=p.k_fed, N=p.n,
            bits=p.bits, block_size=p.block, accuracy_level=self.accuracy,
        )  # fmt: skip
        if p.offset_t is None:
            return y
        sums = self._block_sums(x, p.block, p.k)  # y + sums @ offset_t in one node
        return self.op("Gemm", [sums, self.const(p.offset_t, "offset", big=True), y])

    def _with_digit_sums(self, x: str, p: NBits) -> str:
        """``[x | S | S ...]``: the block sums padded to ``p.groups`` blocks, once per
        digit (``quant.digits``), for the kernel to apply the offsets itself."""
        key = ("digit sums", (x, p.block, p.k, p.digits, p.groups))
        if key not in self._memo:
            sums = self._block_sums(x, p.block, p.k)
            pad = p.groups * p.block - p.k // p.block
            if pad:
                pads = self.const(np.array([0, 0, 0, pad], dtype=np.int64), "pads")
                sums = self.op("Pad", [sums, pads])
            self._memo[key] = self.op("Concat", [x, *[sums] * p.digits], axis=-1)
        return self._memo[key]

    def _block_sums(self, x: str, block: int, k: int) -> str:
        key = ("sums", (x, block))
        if key not in self._memo:
            shape = self.const(np.array([-1, k // block, block], dtype=np.int64), "shape")
            blocks = self.op("Reshape", [x, shape])
            axes = self.const(np.array([-1], dtype=np.int64), "axes")
            self._memo[key] = self.op("ReduceSum", [blocks, axes], keepdims=0)
        return self._memo[key]

    def _memo_op(self, key: tuple[str, Any], op_type: str, inputs: list[str], **attrs: Any) -> str:
        if key not in self._memo:
            self._memo[key] = self.op(op_type, inputs, **attrs)
        return self._memo[key]

    def model_bytes(self) -> bytes:
        """The serialized ONNX model."""
        graph = helper.make_graph(self.nodes, "block", self.inputs, self.outputs, self.inits)
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(_MS, 1)]
        model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
        return bytes(model.SerializeToString())
