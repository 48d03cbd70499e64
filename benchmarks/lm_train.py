"""Training-step throughput of our LM against transformers' MistralForCausalLM, same shape, data and optimiser.

    python benchmarks/lm_train.py                      # the cpu profile's shape, fp32
    python benchmarks/lm_train.py --profile gpu        # the paper's shape (bf16 autocast on a GPU)
    python benchmarks/lm_train.py --compile            # also time torch.compile of our model

Both models are built from the same weights; the steps alternate (ours, HF, ours, HF, …) in one process so that
machine noise hits both alike. Prints tokens/s of each and the ratio ours / HF.
"""
import argparse
import statistics
import time

import torch

from universal_features.profiles import get_config
from universal_features.model import LanguageModel, hf_config, next_token_loss
from universal_features.train import param_groups


def hf_model(ours: LanguageModel):
    import transformers
    from universal_features.model import _hf_names
    cfg = transformers.MistralConfig(**{k: v for k, v in hf_config(ours.cfg, ours.vocab_size).items()
                                        if k not in ("architectures", "model_type", "universal_features", "torch_dtype")})
    hf = transformers.MistralForCausalLM(cfg)
    names = _hf_names(ours.cfg.n_layers)
    hf.load_state_dict({names[k]: v.clone() for k, v in ours.state_dict().items()})
    return hf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--vocab", type=int, default=0, help="vocabulary size (default: the profile's tokenizer.vocab_size)")
    ap.add_argument("--batch", type=int, default=0, help="blocks per step (default: the profile's train.batch_size)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="steps per model per round")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    cfg = get_config(a.profile)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda"
    V, B, T = a.vocab or cfg.tokenizer.vocab_size, a.batch or cfg.train.batch_size, cfg.model.context_length
    torch.manual_seed(0)
    ours = LanguageModel(cfg.model, V).to(device)
    hf = hf_model(ours).to(device)
    data = torch.randint(0, V, (a.rounds * a.steps * 2 + 4, B, T), device=device)
    tc = cfg.train

    def make_opt(m):
        return torch.optim.AdamW(param_groups(m, tc.weight_decay), lr=tc.lr, betas=tuple(tc.betas), fused=device.type == "cuda")

    def our_step(m, opt, x):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            logits = m(x)
        loss = next_token_loss(logits, x)
        loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)

    def hf_step(m, opt, x):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = m(input_ids=x, labels=x).loss
        loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)

    runners = {"ours": (ours, make_opt(ours), our_step), "hf": (hf, make_opt(hf), hf_step)}
    if a.compile:
        c = torch.compile(ours)
        runners["ours+compile"] = (c, make_opt(ours), our_step)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for name, (m, opt, fn) in runners.items():  # warm-up (and compilation)
        for i in range(2): fn(m, opt, data[i])
    times = {n: [] for n in runners}
    k = 2
    for r in range(a.rounds):
        for name, (m, opt, fn) in runners.items():
            sync(); t = time.perf_counter()
            for _ in range(a.steps): fn(m, opt, data[k % len(data)]); k += 1
            sync(); times[name].append((time.perf_counter() - t) / a.steps)
    tok = B * T
    print(f"shape: d_model {cfg.model.d_model}, d_mlp {cfg.model.d_mlp}, heads {cfg.model.n_heads}/{cfg.model.n_kv_heads}, "
          f"vocab {V}, batch {B}x{T}; device {device}, {'bf16 autocast' if bf16 else 'fp32'}, threads {torch.get_num_threads()}")
    med = {n: statistics.median(v) for n, v in times.items()}
    for n, s in med.items(): print(f"{n:14s} {tok / s:12,.0f} tokens/s  ({s * 1000:.1f} ms/step, median of {a.rounds} rounds)")
    for n in med:
        if n != "hf": print(f"ratio {n} / hf: {med['hf'] / med[n]:.2f}x")


if __name__ == "__main__":
    main()
