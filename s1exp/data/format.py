"""The s1 chat format: how a (question, thinking, answer) becomes tokens, and what is supervised.

S1_SPEC section 2: the assistant turn is
`<|im_start|>think\\n{thinking}\\n<|im_start|>answer\\n{answer}` inside the Qwen chat template with
its default system prompt, and only the assistant turn carries loss. Generation prompts
(section 3) end with the assistant header plus `<|im_start|>think`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
END_OF_THINKING = "<|im_start|>"
THINK_START = "<|im_start|>think"
ANSWER_START = "<|im_start|>answer"
FORCED_ANSWER = "<|im_start|>answer\nFinal Answer:"
END_OF_TURN = "<|im_end|>"


def assistant_text(thinking: str, answer: str) -> str:
    """The assistant turn the model is trained to write; answers get an "Answer: " prefix."""
    if "Answer:" not in answer:
        answer = f"Answer: {answer}"
    return f"{THINK_START}\n{thinking}\n{ANSWER_START}\n{answer}"


def user_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """Tokens of a text on its own (no BOS/EOS added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """Chat-templated question plus assistant header, ending in `<|im_start|>think`."""
    text = tokenizer.apply_chat_template(
        user_messages(question), tokenize=False, add_generation_prompt=True
    )
    return token_ids(tokenizer, text + THINK_START)


@dataclass(frozen=True)
class TrainingExample:
    input_ids: list[int]
    labels: list[int]


def training_example(
    tokenizer: Any, question: str, thinking: str, answer: str, block_size: int
) -> TrainingExample:
    """One s1 SFT sample: the think/answer assistant turn, supervised on that turn only."""
    return chat_example(tokenizer, question, assistant_text(thinking, answer), block_size)


def chat_example(tokenizer: Any, question: str, response: str, block_size: int) -> TrainingExample:
    """Tokenize a chat exchange with loss on the assistant turn only (through `<|im_end|>`).

    The prompt part is tokenized on its own and must be a prefix of the full sequence; since the
    turn boundary is the special token `<|im_start|>` this holds for ChatML tokenizers, and a
    tokenizer that breaks it is rejected rather than silently mis-masked.
    """
    messages = user_messages(question)
    prompt_text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    full_text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": response}], tokenize=False
    )
    prompt = token_ids(tokenizer, prompt_text)
    full = token_ids(tokenizer, full_text)
    if full[: len(prompt)] != prompt:
        raise ValueError(
            "model tokenizer: the chat prompt does not tokenize as a prefix of the full "
            "conversation; use a ChatML tokenizer with <|im_start|> as a special token"
        )
    full = full[:block_size]
    labels = [IGNORE_INDEX] * min(len(prompt), len(full)) + full[len(prompt) :]
    return TrainingExample(input_ids=full, labels=labels)
