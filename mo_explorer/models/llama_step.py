"""A lean decoding step for Llama-architecture models (SmolLM2 is one): the same weights and maths as transformers'
forward, with less Python between the kernels.

Why: on 2 cores a decoding step of SmolLM2-135M for 8 rows took ~42 ms, of which the kernels that must run (int4
matmuls, the LM head, attention) were about half; the rest was transformers' per-layer Python (mask and cache
bookkeeping, `repeat_kv` copies of the whole cache, `torch.cat` growing it every step) and torchao's tensor-subclass
dispatch around each of the 210 int4 matmuls. Here the cache is preallocated and written in place, queries are
grouped onto their key/value head instead of copying keys, q/k/v and gate/up are one matmul each, and int4 weights
call the kernel directly: 8 x 128 tokens 5.4 s -> 3.7 s of generation on 2 cores (README, Speed). Dense weights
(the LM head always; every projection of a bf16 or float32 model) are laid out once for oneDNN (models.onednn).
Prefill still runs transformers' own forward (once per round), so the cache starts exactly as transformers builds
it.

Used only where `supports(model)` holds; any other model decodes through `HFStep`, transformers' own forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mo_explorer.models import onednn

_ROPE_BY_POSITION = {"default", "linear", "llama3"}  # rotary tables that depend on the position only


def _rope_type(config) -> str:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return str(params.get("rope_type", params.get("type", "default")))


def supports(model) -> bool:
    """Whether the lean step reproduces this model's forward: a Llama decoder without biases, SiLU MLP, a rotary table
    that depends on the position only, and every Linear either plain or int4 (models.quantize)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return False
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return False
    if getattr(config, "hidden_act", None) != "silu" or _rope_type(config) not in _ROPE_BY_POSITION:
        return False
    layers = getattr(getattr(model, "model", None), "layers", None)
    return bool(layers) and all(_kind(p) in ("dense", "int4") for layer in layers for p in _projections(layer))


def _projections(layer) -> list[torch.Tensor]:
    a, m = layer.self_attn, layer.mlp
    return [a.q_proj.weight, a.k_proj.weight, a.v_proj.weight, a.o_proj.weight, m.gate_proj.weight,
            m.up_proj.weight, m.down_proj.weight]


def _kind(weight: torch.Tensor) -> str:
    if type(weight).__name__ == "Int4OpaqueTensor" and getattr(weight, "act_pre_scale", None) is None \
            and getattr(weight, "act_mapping_type", None) is None:
        return "int4"
    return "dense" if type(weight) in (torch.Tensor, torch.nn.Parameter) else "other"


class _Linear:
    """Several projections of one input as one matmul, their weight rows concatenated (int4 codes and group scales
    concatenate the same way: one output row each).

    The projections' own weights become views of the joined rows, so the model keeps one copy of each weight and
    transformers' forward (the prefill) reads the same numbers. int4 group scales are small and stay duplicated:
    the kernel reads them as a contiguous (K / group, N, 2) block.
    """

    def __init__(self, modules: list[torch.nn.Linear]):
        weights = [m.weight for m in modules]
        self.sizes = [int(w.shape[0]) for w in weights]
        bounds = [sum(self.sizes[:i]) for i in range(len(self.sizes) + 1)]
        self.int4 = all(_kind(w) == "int4" for w in weights)
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []  # int4 pieces the kernel cannot read joined
        if self.int4:
            self.group = int(weights[0].block_size[1])
            self.qdata = torch.cat([w.qdata for w in weights], dim=0)  # (N, K / 2) packed codes
            self.scale_and_zero = torch.cat([w.scale_and_zero for w in weights], dim=1)  # (K / group, N, 2)
            # The CPU packing interleaves rows in blocks chosen from N: joining is exact only where the pieces'
            # blocks line up (SmolLM2's 576/192/192 do, a tiny model's 64/32/32 did not). Checked, not assumed.
            probe = torch.randn(3, weights[0].shape[1], generator=torch.Generator().manual_seed(0)).bfloat16()
            separate = torch.cat([self._mm(probe, w.qdata, w.scale_and_zero) for w in weights], dim=-1)
            if not torch.equal(self._mm(probe, self.qdata, self.scale_and_zero), separate):
                self.parts = [(w.qdata, w.scale_and_zero) for w in weights]
                return
            for w, a, b in zip(weights, bounds, bounds[1:]):
                w.qdata = self.qdata[a:b]
        else:
            self.weight = torch.cat([w.detach() for w in weights], dim=0)
            for m, a, b in zip(modules, bounds, bounds[1:]):
                m.weight = torch.nn.Parameter(self.weight[a:b], requires_grad=False)
            self.packed = onednn.packed(self.weight)  # laid out once for oneDNN

    def _mm(self, x: torch.Tensor, qdata: torch.Tensor, scale_and_zero: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, qdata, self.group, scale_and_zero)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.parts:
            return torch.cat([self._mm(x, q, sz) for q, sz in self.parts], dim=-1)
        if self.int4:
            return self._mm(x, self.qdata, self.scale_and_zero)
        return onednn.linear(x, self.weight, self.packed)


class _Layer:
    def __init__(self, layer):
        a, m = layer.self_attn, layer.mlp
        self.qkv = _Linear([a.q_proj, a.k_proj, a.v_proj])
        self.o = _Linear([a.o_proj])
        self.gate_up = _Linear([m.gate_proj, m.up_proj])
        self.down = _Linear([m.down_proj])
        self.norm1 = layer.input_layernorm.weight.detach()
        self.norm2 = layer.post_attention_layernorm.weight.detach()
        self.eps1 = float(layer.input_layernorm.variance_epsilon)
        self.eps2 = float(layer.post_attention_layernorm.variance_epsilon)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm: normalised in float32, cast back, then scaled in the model's dtype."""
    return weight * F.rms_norm(x.float(), weight.shape, eps=eps).to(x.dtype)


class HFStep:
    """Decoding through transformers' own forward and cache (any causal LM)."""

    def __init__(self, model):
        self.model = model
        self.cache = None

    def prefill(self, prompt_ids: torch.Tensor, rows: int, max_new_tokens: int) -> torch.Tensor:
        """Run the prompt (1, T) once, repeat its cache for `rows` rows; the next-token logits (1, V)."""
        out = self.model(input_ids=prompt_ids, use_cache=True)
        self.cache = out.past_key_values
        if rows > 1:
            self.cache.batch_repeat_interleave(rows)
        return out.logits[:, -1]

    def select(self, index: torch.Tensor) -> None:
        """Keep only these batch rows."""
        self.cache.batch_select_indices(index)

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) after appending token (B,) to every row."""
        return self.model(input_ids=token[:, None], past_key_values=self.cache, use_cache=True).logits[:, -1]


class LlamaStep:
    """Decoding with a preallocated cache; prefill through transformers, then one lean forward per token.

    The weights are read when the step is built (dense ones copied into oneDNN's layout): a model whose weights
    change afterwards needs a new step.
    """

    def __init__(self, model):
        config = model.config
        self.model = model
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        self.scaling = self.head_dim ** -0.5
        self.layers = [_Layer(layer) for layer in model.model.layers]
        self.embed = model.model.embed_tokens.weight.detach()
        self.norm = model.model.norm.weight.detach()
        self.norm_eps = float(model.model.norm.variance_epsilon)
        self.head = model.get_output_embeddings().weight.detach()
        self.head_packed = onednn.packed(self.head)
        self.rotary = model.model.rotary_emb
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.start = self.position = 0
        self.pads: torch.Tensor | None = None  # (B,) empty slots before each row's prompt (prefill_many)

    def prefill(self, prompt_ids: torch.Tensor, rows: int, max_new_tokens: int) -> torch.Tensor:
        """Run the prompt (1, T) once, its cache repeated for `rows` rows; the next-token logits (1, V)."""
        return self.prefill_many([prompt_ids], [rows], max_new_tokens)[:1]

    def prefill_many(self, prompts: list[torch.Tensor], rows: list[int], max_new_tokens: int) -> torch.Tensor:
        """Several prompts (1, T_i) in one batch, rows[i] rows each, in order; the next-token logits (G, V).

        Each prompt runs through transformers alone (its cache exactly as transformers builds it) and is copied in
        right-aligned: every row then writes its next token at the same slot, and a row whose prompt is shorter
        than the longest masks the empty slots before it (`self.pads`) and reads its rotary angles `pads` back.
        One prompt needs neither: the step runs as before.
        """
        lengths = [int(p.shape[1]) for p in prompts]
        longest = max(lengths)
        total = longest + max_new_tokens
        self.keys, self.values = [], []
        last = []
        for index, (prompt_ids, length) in enumerate(zip(prompts, lengths)):
            # Only the last position's logits are read: the head over every prompt position was 25 of 156 ms
            out = self.model(input_ids=prompt_ids, use_cache=True, logits_to_keep=1)
            last.append(out.logits[:, -1])
            first, end = sum(rows[:index]), sum(rows[:index + 1])
            for i, layer in enumerate(out.past_key_values.layers):  # (1, kv_heads, T, D) each
                for source, store in ((layer.keys, self.keys), (layer.values, self.values)):
                    if index == 0:
                        store.append(source.new_empty(sum(rows), self.kv_heads, total, self.head_dim))
                    buffer = store[i]
                    # empty slots are zeros, not whatever memory held: a masked NaN would still poison attention
                    buffer[first:end, :, :longest - length] = 0
                    buffer[first:end, :, longest - length:longest] = source
        positions = torch.arange(0, total, device=prompts[0].device)[None]  # (1, L)
        probe = self.embed[:1][None]  # the rotary module reads only the dtype and device of its input
        cos, sin = self.rotary(probe, positions)  # (1, L, D)
        half = self.head_dim // 2
        # rotate_half(x) * sin == swap_halves(x) * [-sin_1, sin_2]: one flip instead of two slices, a neg and a cat
        self.cos, self.sin = cos[0], torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)
        self.start = self.position = longest
        self.pads = None
        if len(set(lengths)) > 1:
            self.pads = torch.tensor([longest - length for length, count in zip(lengths, rows) for _ in range(count)],
                                     device=prompts[0].device)  # (B,)
        return torch.cat(last, dim=0)

    def select(self, index: torch.Tensor) -> None:
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        if self.pads is not None:
            self.pads = self.pads.index_select(0, index)

    def _angles(self, pos: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The rotary cos and sin at slot pos ((D,), or (B, 1, D) per row), and the mask of the slots each row
        reads ((B, 1, 1, pos + 1); None when every row reads them all)."""
        if self.pads is None:
            return self.cos[pos], self.sin[pos], None
        own = pos - self.pads  # (B,) each row's own position
        slots = torch.arange(pos + 1, device=own.device)
        mask = (slots[None, :] >= self.pads[:, None])[:, None, None, :]
        return self.cos[own][:, None], self.sin[own][:, None], mask

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        rows, pos = token.shape[0], self.position
        cos, sin, mask = self._angles(pos)
        x = F.embedding(token, self.embed)  # (B, H)
        group, heads, kv, dim = self.heads // self.kv_heads, self.heads, self.kv_heads, self.head_dim
        for i, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.norm1, layer.eps1)
            qkv = layer.qkv(h)  # (B, (heads + 2 kv) * D): queries, keys, values
            qk = qkv[:, :(heads + kv) * dim].view(rows, heads + kv, dim)  # rotated together
            qk = qk * cos + qk.view(rows, heads + kv, 2, dim // 2).flip(2).view(rows, heads + kv, dim) * sin
            q = qk[:, :heads].view(rows, kv, group, dim)  # queries grouped onto their key/value head
            keys, values = self.keys[i], self.values[i]
            keys[:, :, pos] = qk[:, heads:]
            values[:, :, pos] = qkv[:, (heads + kv) * dim:].view(rows, kv, dim)
            # The group's queries read their key/value head's cache in place (no mask: a step sees every earlier
            # token). SDPA reads the strided cache without the copies matmul made of it: 8% faster per round here;
            # it keeps the attention weights in float32, so bf16 results differ from eager attention by rounding.
            attn = F.scaled_dot_product_attention(q, keys[:, :, :pos + 1], values[:, :, :pos + 1], attn_mask=mask,
                                                  scale=self.scaling).reshape(rows, heads * dim)
            x = x + layer.o(attn)
            h = _rms_norm(x, layer.norm2, layer.eps2)
            gate, up = layer.gate_up(h).split(layer.gate_up.sizes, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        self.position += 1
        return onednn.linear(_rms_norm(x, self.norm, self.norm_eps), self.head, self.head_packed)


def stepper(model):
    """The fastest decoding step that reproduces this model's forward."""
    return LlamaStep(model) if supports(model) else HFStep(model)
