import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import scipy.sparse as sp

from universal_features import autointerp as ai
from universal_features.activations import ActivationStore
from universal_features.dashboards import StandInTokenizer


class FakeAPI:
    "A localhost server speaking the chat-completions protocol with scripted answers: (status, body, delay, headers)."
    def __init__(self):
        self.script, self.requests = [], []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a): pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, payload, delay, headers = api.script.pop(0) if api.script else (200, chat("0"), 0, {})
                time.sleep(delay)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items(): self.send_header(k, v)
                    self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data)))
                    self.end_headers(); self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def chat(content, top=None):
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": content, "logprob": -0.1,
                                           "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


@pytest.fixture
def api():
    s = FakeAPI()
    yield s
    s.server.shutdown()


def client(api, tmp_path, **kw):
    kw = {"max_retries": 3, "requests_per_minute": 1e6, "timeout_s": 5, "backoff_s": 0.01, **kw}
    return ai.ChatClient("gpt-4-turbo", api.url, "sk-test", tmp_path / "cache", **kw)


def test_explain_and_simulate_over_http(api, tmp_path):
    api.script = [(200, chat(" the = of assignments."), 0, {}),
                  (200, chat("3", top=[("3", -1.2), ("7", -0.3), (" 7", -2.0), ("x", -0.01)]), 0, {}),
                  (200, chat("0", top=[("0", -0.05), ("1", -3.0)]), 0, {})]
    be = ai.OpenAIBackend(client(api, tmp_path))
    assert be.explain("Feature #5", [(" =", 9), ("x", 0)]) == "the = of assignments."
    assert be.simulate("the = of assignments.", [" =", " x"]) == [7, 0]   # argmax over digit log-probs, not the text
    r = api.requests
    assert [q["path"] for q in r] == ["/v1/chat/completions"] * 3 and r[0]["auth"] == "Bearer sk-test"
    assert r[0]["body"]["model"] == "gpt-4-turbo" and r[0]["body"]["temperature"] == 0
    assert r[0]["body"]["messages"][-1]["content"].endswith("This feature looks mainly for")
    assert '" ="\t9' in r[0]["body"]["messages"][-1]["content"]
    assert r[1]["body"]["logprobs"] is True and r[1]["body"]["top_logprobs"] == 10


def test_responses_are_cached_on_disk(api, tmp_path):
    c = client(api, tmp_path)
    msgs = [{"role": "user", "content": "hi"}]
    a = c.complete(msgs, temperature=0)
    b = client(api, tmp_path).complete(msgs, temperature=0)    # a new client: a rerun
    assert a == b and len(api.requests) == 1
    assert not list((tmp_path / "cache").rglob(".*tmp"))
    client(api, tmp_path).complete(msgs, temperature=0.5)      # another request is not a cache hit
    assert len(api.requests) == 2


def test_retries_on_rate_limit_and_server_errors(api, tmp_path):
    api.script = [(429, {"error": "slow down"}, 0, {"Retry-After": "0"}), (500, {"error": "oops"}, 0, {}),
                  (503, {"error": "busy"}, 0, {}), (200, chat("fine"), 0, {})]
    r = client(api, tmp_path).complete([{"role": "user", "content": "x"}])
    assert r["choices"][0]["message"]["content"] == "fine" and len(api.requests) == 4


def test_client_errors_fail_at_once_with_a_clear_message(api, tmp_path):
    api.script = [(401, {"error": {"message": "bad key"}}, 0, {})]
    with pytest.raises(ai.AutointerpError, match="HTTP 401.*bad key.*OPENAI_API_KEY"):
        client(api, tmp_path).complete([{"role": "user", "content": "x"}])
    assert len(api.requests) == 1


def test_timeouts_are_retried_then_reported(api, tmp_path):
    api.script = [(200, chat("late"), 1.0, {})] * 3
    with pytest.raises(ai.AutointerpError, match="failed after 3 attempts.*(timed out|Timeout)"):
        client(api, tmp_path, timeout_s=0.2, max_retries=2).complete([{"role": "user", "content": "x"}])
    assert len(api.requests) == 3
    assert not list((tmp_path / "cache").rglob("*.json")), "a failed request must not be cached"


def test_rate_limit_spaces_requests(api, tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(ai.time, "sleep", lambda s: slept.append(s))
    c = client(api, tmp_path, requests_per_minute=60)     # one request a second
    for i in range(3): c.complete([{"role": "user", "content": str(i)}])
    slept = [s for s in slept if s > 0]                  # (the fake server's own zero-second sleeps share `time`)
    assert len(slept) == 2 and all(0.5 < s <= 1.0 for s in slept)


def test_backend_choice_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert isinstance(ai.make_backend("auto", "gpt-4-turbo", tmp_path), ai.OfflineProxyBackend)
    with pytest.raises(ai.AutointerpError, match="OPENAI_API_KEY"):
        ai.make_backend("openai", "gpt-4-turbo", tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x"); monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("UF_AUTOINTERP_MODEL", "my-model")
    be = ai.make_backend("auto", "gpt-4-turbo", tmp_path)
    assert isinstance(be, ai.OpenAIBackend) and be.client.model == "my-model" and be.client.base_url == "http://127.0.0.1:9/v1"
    assert isinstance(ai.make_backend("offline", "m", tmp_path), ai.OfflineProxyBackend)
    with pytest.raises(ai.AutointerpError, match="one of auto, openai, offline"):
        ai.make_backend("gpt", "m", tmp_path)


def test_quantisation_round_trip():
    a = np.array([0.0, 0.05, 0.5, 0.99, 1.0])
    q = ai.quantise(a, 0.0, 1.0)
    assert q.tolist() == [0, 0, 5, 9, 9]
    assert np.allclose(ai.unquantise(q, 0.0, 1.0), [0.05, 0.05, 0.55, 0.95, 0.95])
    assert ai.quantise(a, 1.0, 1.0).tolist() == [0] * 5


def test_example_selection_follows_the_protocol():
    rng = np.random.default_rng(0)
    col = np.zeros(2000); col[:40] = np.linspace(1.0, 10.0, 40)       # 40 activating tokens in blocks 0-1
    token_ids = np.arange(2000) % 97
    block_of = np.arange(2000) // 20
    pos = ai.select_examples(col, token_ids, block_of, rng)
    q = ai.quantise(col, col.min(), col.max())
    n9 = int((q == 9).sum())
    top = pos[:n9]
    assert 0 < n9 < 10 and sorted(col[top]) == sorted(np.sort(col)[-n9:])   # bin 9's top (at most 10) first
    for b in range(1, 9):                                                   # then the 2 largest of each lower bin
        assert sorted(col[pos[n9 + 2 * (8 - b): n9 + 2 * (9 - b)]]) == sorted(np.sort(col[q == b])[-2:])
    assert len(set(pos)) == len(pos)
    others = [i for i in pos if col[i] == 0 and token_ids[i] in set(token_ids[top])]
    assert 1 <= len(others) <= 10 and len({block_of[i] for i in others}) == len(others)


def test_offline_proxy_recovers_a_token_feature():
    be = ai.OfflineProxyBackend()
    expl = be.explain("Feature #1", [(" =", 9), (" =", 8), ("=", 6), (" x", 0), ('"q"\n', 3)])
    assert be.parse(expl) == {" =": 8, "=": 6, '"q"\n': 3}
    assert be.simulate(expl, [" =", " y", "=", " ="]) == [8, 0, 6, 8]
    # end to end on a planted feature that fires on token 7 only: the proxy explains it perfectly
    tokens = np.random.default_rng(0).integers(0, 20, size=(40, 8))
    dense = (tokens.reshape(-1) == 7).astype(np.float32)[:, None] * 2.0
    store = ActivationStore(tokens, sp.csc_matrix(dense))
    s = ai.score_feature(be, store, StandInTokenizer(), 0, np.arange(20), np.arange(20, 40), 3, 3, seed=0)
    assert s.score == pytest.approx(1.0) and "t7" in s.explanation and s.n_tokens == 48


def test_api_settings_rekey_only_autointerp_and_what_reads_it(monkeypatch):
    from universal_features.profiles import get_config
    from universal_features.reproduce import discover_stages, stage_keys
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    stages, cfg = discover_stages(), get_config("smoke")
    before = stage_keys(stages, cfg)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    after = stage_keys(stages, cfg)
    changed = {k for k in before if before[k] != after[k]}
    needs = {s.stage.name: set(s.stage.needs) for s in stages}
    assert "autointerp" in changed
    assert all("autointerp" in needs[k] or k == "autointerp" or needs[k] & changed for k in changed)
    assert not changed & {"data", "tokenizer", "train", "merge", "sae", "matching", "case_studies", "explorer"}


def test_autointerp_stage_offline(smoke_run):
    res = json.loads((smoke_run / "results.json").read_text())["autointerp"]
    assert res["is_proxy"] and res["backend"] == "offline-proxy" and "OFFLINE PROXY" in res["backend_label"]
    for ext in ("png", "pdf"): assert (smoke_run / "figures" / f"fig6_autointerp.{ext}").stat().st_size > 1000
    assert "OFFLINE PROXY" in (smoke_run / "tables" / "autointerp_summary.md").read_text()
    import pandas as pd
    df = pd.read_csv(smoke_run / "tables" / "autointerp_scores.csv")
    assert set(df.group) == {"Lua features", "Lua features persisting into LuaStories"} and (df.backend == "offline-proxy").all()
    assert res["groups"]["Lua features"]["n"] + res["groups"]["Lua features"]["undefined"] == (df.group == "Lua features").sum()
