"""The loss mask covers exactly the assistant turn (S1_SPEC section 2)."""

from __future__ import annotations

from transformers import AutoTokenizer

from s1exp.data.format import IGNORE_INDEX, assistant_text, prompt_ids, training_example


def test_assistant_text_prefixes_answer():
    assert assistant_text("t", "42") == "<|im_start|>think\nt\n<|im_start|>answer\nAnswer: 42"
    assert assistant_text("t", "Answer: 7").endswith("answer\nAnswer: 7")


def test_first_supervised_token_starts_the_think_delimiter(trained_model: str):
    tok = AutoTokenizer.from_pretrained(trained_model)
    ex = training_example(tok, "What is 2 + 3?", "2+3=5.", "Answer: 5", block_size=512)
    first = next(i for i, label in enumerate(ex.labels) if label != IGNORE_INDEX)
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    # Everything before is system prompt + user turn + assistant header, all masked.
    header = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    assert tok.decode(ex.input_ids[:first]) == header
    assert ex.input_ids[first] == im_start
    assert tok.decode(ex.input_ids[first : first + 2]) == "<|im_start|>think"
    # Supervision runs through the end-of-turn token; labels equal inputs there.
    assert ex.labels[first:] == ex.input_ids[first:]
    assert tok.convert_tokens_to_ids("<|im_end|>") in ex.labels[first:]
    assert all(label == IGNORE_INDEX for label in ex.labels[:first])


def test_block_size_truncates_without_shifting_the_mask(trained_model: str):
    tok = AutoTokenizer.from_pretrained(trained_model)
    full = training_example(tok, "q?", "long " * 50, "1", block_size=4096)
    cut = training_example(tok, "q?", "long " * 50, "1", block_size=40)
    assert cut.input_ids == full.input_ids[:40] and cut.labels == full.labels[:40]


def test_generation_prompt_ends_with_think(trained_model: str):
    tok = AutoTokenizer.from_pretrained(trained_model)
    ids = prompt_ids(tok, "What is 1 + 1?")
    assert tok.decode(ids).endswith("<|im_start|>assistant\n<|im_start|>think")
