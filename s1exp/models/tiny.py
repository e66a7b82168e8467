"""A tiny Qwen2-architecture causal LM and Qwen2.5-like tokenizer, built offline.

The toy world and most tests need a model that loads exactly like a real Qwen2.5 checkpoint (in
transformers and vLLM) and speaks the same chat format, so that the paper's prompts, budget-forcing
delimiters (``<|im_start|>think`` / ``<|im_start|>answer``) and stop tokens work unchanged, yet
builds in seconds without network access. Everything here is deterministic for a given corpus and
seed so cached artifacts can be keyed by their inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
DEFAULT_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# Ordinary words that must be single tokens: the budget-forcing delimiters ("think", "answer") and
# the extrapolation strings / answer markers that appear in traces. They are ordinary text, not
# special tokens, exactly as in Qwen2.5's vocabulary.
REQUIRED_WORDS = ("think", "answer", "Wait", "Hmm", "Alternatively", "Answer", "Final")
# How often each required word (bare and with a leading space) is shown to the BPE trainer, on top
# of the corpus, so its merges always win against the corpus' own pairs.
_WORD_BOOST = 1000

# Qwen2.5's pre-tokenization regex (each digit is its own piece). It must be exactly Qwen's: with
# model_type "qwen2" in config.json, AutoTokenizer loads Qwen2Tokenizer, which rebuilds the
# pre-tokenizer from this regex and keeps only vocab and merges from tokenizer.json.
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2.5-Instruct's chat template restricted to plain text messages (no tools).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def _training_stream(corpus: Iterable[str]) -> Iterator[str]:
    """The corpus followed by the boosted required words (with and without a leading space)."""
    yield from corpus
    boost = "".join(" " + w for w in REQUIRED_WORDS) + "\n" + "\n".join(REQUIRED_WORDS) + "\n"
    for _ in range(_WORD_BOOST):
        yield boost


def build_tokenizer(
    corpus: Iterable[str], vocab_size: int = 1024, model_max_length: int = 2048
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE with Qwen2.5's pre-tokenization, specials and chat template.

    Digits are split individually (as in Qwen) so numbers tokenize the same regardless of the
    corpus, and the ByteLevel alphabet is seeded so any byte string round-trips. Raises if a
    REQUIRED_WORDS entry did not become a single token.
    """
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_stream(corpus), trainer=trainer)
    for word in REQUIRED_WORDS + tuple(" " + w for w in REQUIRED_WORDS):
        if len(tok.encode(word).ids) != 1:
            raise ValueError(f"BPE did not learn {word!r} as one token; raise vocab_size")

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        extra_special_tokens=["<|im_start|>", "<|im_end|>"],
        split_special_tokens=False,
        padding_side="right",
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 2,
    num_kv_heads: int = 2,
    intermediate_size: int = 384,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> Qwen2ForCausalLM:
    """A randomly initialised (seeded) float32 Qwen2 model sized for ``tokenizer``.

    head_dim must be >= 64 because vLLM's CPU attention rejects smaller heads; the vocabulary is
    padded to a multiple of 64 as real checkpoints do (extra rows are never produced by the
    tokenizer). The global RNG state is left untouched.
    """
    if hidden_size % num_heads or hidden_size // num_heads < 64:
        raise ValueError(f"head_dim = {hidden_size}/{num_heads} must be an integer >= 64")
    if num_heads % num_kv_heads:
        raise ValueError("num_heads must be a multiple of num_kv_heads")
    endoftext, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen2Config(
        vocab_size=-(-len(tokenizer) // 64) * 64,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        max_window_layers=num_layers,
        use_sliding_window=False,
        tie_word_embeddings=True,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        pad_token_id=endoftext,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = generation_config(tokenizer)
    return model.eval()


def generation_config(tokenizer: PreTrainedTokenizerFast) -> GenerationConfig:
    """Stop on end-of-turn or end-of-text, as Qwen2.5-Instruct's generation_config.json does."""
    endoftext, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    return GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext
    )


def save(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """Write a Hugging Face checkpoint (safetensors + tokenizer files) loadable by vLLM too."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = generation_config(tokenizer)
    tokenizer.model_max_length = model.config.max_position_embeddings  # keep the two in step
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # Keep the template in tokenizer_config.json too (older readers look only there).
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("chat_template") != CHAT_TEMPLATE:
        cfg["chat_template"] = CHAT_TEMPLATE
        cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
