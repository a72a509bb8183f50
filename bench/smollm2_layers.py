"""What SmolLM2's first layers cost as a reward trunk on this CPU: 8 answers x 128 tokens through the first N of its
30 layers, in float32, bfloat16 and two torchao int8 layouts, with each one's error against float32 and whether an
answer's states change with the batch it is scored in (bench/trunk.md, "Why not a SmolLM2 trunk").

    python -m bench.smollm2_layers [--layers 11] [--repeats 5]

Prints the CPU (flags, threads, load) and one line per precision. The scoring budget of issue 27 is 0.5 s for the
whole reward model (8 answers of 128 tokens).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_
from transformers import AutoModelForCausalLM

from bench.bench import cpu_report
from mo_explorer import config
from mo_explorer.models.embedded import SMOLLM2, resolve_model_path


def load(path: str, layers: int, dtype: torch.dtype):
    """SmolLM2 cut after its first `layers` layers."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    model.model.layers = model.model.layers[:layers]
    return model


def states(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.model(input_ids=ids).last_hidden_state.float()


def median_s(model, ids: torch.Tensor, repeats: int) -> float:
    for _ in range(2):  # warm-up: first calls pay for allocation and kernel selection
        states(model, ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        states(model, ids)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.smollm2_layers", description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=11)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(json.dumps(cpu_report()))
    path = resolve_model_path(SMOLLM2, config.Settings.from_env().models.cache_dir)
    ids = torch.randint(100, 40000, (8, 128))
    reference = states(load(path, args.layers, torch.float32), ids)
    variants = {"float32": (torch.float32, None), "bfloat16": (torch.bfloat16, None),
                "int8 weights + int8 per-token activations (torchao)": (torch.float32,
                                                                        Int8DynamicActivationInt8WeightConfig()),
                "int8 weights only (torchao)": (torch.float32, Int8WeightOnlyConfig())}
    for name, (dtype, quant) in variants.items():
        model = load(path, args.layers, dtype)
        if quant is not None:
            quantize_(model, quant)
        seconds = median_s(model, ids, args.repeats)
        full, alone = states(model, ids), states(model, ids[:1])
        error = float((full - reference).norm() / reference.norm())
        batch = float((full[:1] - alone).abs().max())
        print(f"{name}: {seconds:.3f} s for 8 x 128 tokens through {args.layers} layers; relative error against "
              f"float32 {error:.3f}; largest change of an answer's states with its batch {batch:.3g}", flush=True)


if __name__ == "__main__":
    main()
