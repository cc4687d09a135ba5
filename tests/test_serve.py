"""The playground's API: answers, limits and their 4xx messages, static files, and the expression parser."""

import math
import re
import socket
import threading
import time

import pytest
from conftest import need

for module in ("fastapi", "uvicorn", "swagger_ui_bundle"):
    need(module, "pip install -e '.[serve]' (the serve extra)")
from fastapi.testclient import TestClient  # noqa: E402

from makemore.serve.app import create_app  # noqa: E402
from makemore.serve.engine import Engine  # noqa: E402


@pytest.fixture(scope="module")
def engine(serve_run):
    import torch

    threads = torch.get_num_threads()
    yield Engine(serve_run, threads=1)  # as `makemore serve` runs it (and far faster on a busy machine)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client(engine):
    return TestClient(create_app(engine))


def get(client, path, status=200, **params):
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    return r.json() if r.headers["content-type"].startswith("application/json") else r.text


def test_info_and_pages(client):
    info = get(client, "/api/info")
    assert info["mode"] == "lines" and info["vocab"][0] == "." and len(info["vocab"]) == 27
    for path in ("/", "/micrograd"):
        r = client.get(path)
        assert r.status_code == 200 and "<script src=\"/static/" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "http" not in r.text.replace('href="/docs"', "")  # no CDN: every asset is ours
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_sample(client, serve_run):
    first = get(client, "/api/sample", n=30, seed=5)
    assert len(first["items"]) == 30 and first["seed"] == 5
    assert get(client, "/api/sample", n=30, seed=5) == first  # a seed fixes the draw
    assert get(client, "/api/sample", n=2)["seed"] != get(client, "/api/sample", n=2)["seed"]
    ka = get(client, "/api/sample", n=10, prefix="ka", temperature=0.5, top_k=3, seed=1)["items"]
    assert all(s.startswith("ka") for s in ka)
    short = get(client, "/api/sample", n=10, length=2, seed=1)["items"]
    assert all(len(s) <= 2 for s in short)
    from makemore.data import load_corpus

    names = set(load_corpus("names").items("all"))
    plain = get(client, "/api/sample", n=200, temperature=0.3, seed=2)["items"]
    assert set(plain) & names  # cold samples are often real names...
    new = get(client, "/api/sample", n=50, temperature=0.3, seed=2, unique="true")["items"]
    assert new and not set(new) & names  # ...which "only new ones" drops


def test_next_probabilities(client, engine):
    data = get(client, "/api/next", prefix="em")
    assert data["prefix"] == "em" and data["context"] == ".em"
    probs = [p["p"] for p in data["probs"]]
    assert [p["char"] for p in data["probs"]] == engine.info()["vocab"]
    assert math.isclose(sum(probs), 1, abs_tol=1e-5) and all(p > 0 for p in probs)
    top2 = [p["p"] for p in get(client, "/api/next", prefix="em", top_k=2)["probs"]]
    assert sum(p > 0 for p in top2) == 2 and math.isclose(sum(top2), 1, abs_tol=1e-5)
    cold = [p["p"] for p in get(client, "/api/next", prefix="em", temperature=0.1)["probs"]]
    assert max(cold) > max(probs) and cold.index(max(cold)) == probs.index(max(probs))
    assert get(client, "/api/next", prefix="emmanuelle")["context"] == "lle"  # the last block_size characters


def test_next_matches_the_sampling_loop(engine):
    """The chart's probabilities are the distribution sampling draws from: the empirical frequencies agree."""
    p = engine.next_probs("ma")
    items, _ = engine.sample(3000, prefix="ma", seed=0, max_len=1)
    freq = [sum(s == "ma" + c for s in items) / len(items) for c in engine.itos[1:]]
    ends = sum(s == "ma" for s in items) / len(items)
    assert abs(ends - p[0]) < 0.03 and max(abs(f - q) for f, q in zip(freq, p[1:], strict=True)) < 0.03


def test_stream(client, engine):
    text = get(client, "/api/stream", prefix="ma", length=2000, seed=3)
    assert 0 < len(text) <= 64 and set(text) <= set(engine.itos[1:])  # a name, cut at its end
    assert text == "".join(engine.stream("ma", 2000, seed=3))
    assert len(get(client, "/api/stream", length=3, seed=3)) <= 3


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("/api/sample", {"n": 0}, 422, "n: Input should be greater than or equal to 1"),
    ("/api/sample", {"n": 1001}, 422, "n: Input should be less than or equal to 1000"),
    ("/api/sample", {"n": "many"}, 422, "n: Input should be a valid integer"),
    ("/api/sample", {"temperature": 0}, 422, "temperature: Input should be greater than 0"),
    ("/api/sample", {"temperature": 10.5}, 422, "temperature: Input should be less than or equal to 10"),
    ("/api/sample", {"temperature": "nan"}, 422, "temperature:"),
    ("/api/sample", {"top_k": 0}, 422, "top_k: Input should be greater than or equal to 1"),
    ("/api/sample", {"length": 2001}, 422, "length: Input should be less than or equal to 2000"),
    ("/api/sample", {"seed": -1}, 422, "seed: Input should be greater than or equal to 0"),
    ("/api/sample", {"prefix": "x" * 2001}, 422, "prefix: String should have at most 2000 characters"),
    ("/api/sample", {"prefix": "ka#"}, 400, "characters not in the model's vocabulary: '#'"),
    ("/api/sample", {"prefix": "Ka"}, 400, "characters not in the model's vocabulary: 'K'"),
    ("/api/next", {"prefix": "é"}, 400, "characters not in the model's vocabulary: 'é'"),
    ("/api/next", {"temperature": -1}, 422, "temperature: Input should be greater than 0"),
    ("/api/stream", {"length": 0}, 422, "length: Input should be greater than or equal to 1"),
    ("/api/stream", {"prefix": "a b"}, 400, "characters not in the model's vocabulary: ' '"),
])
def test_limits_are_4xx_with_a_clear_message(client, path, params, status, message):
    r = client.get(path, params=params)
    assert r.status_code == status
    assert message in r.json()["detail"]


def test_graph(client, dot):
    r = client.post("/api/graph", json={"expr": "a*b + c", "values": {"a": 2, "b": -3, "c": 10}})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["value"] == 4.0 and data["svg"].startswith("<svg") and "</svg>" in data["svg"]
    grads = {n["label"]: n["grad"] for n in data["nodes"] if n["label"]}
    assert grads == {"a": -3.0, "b": 2.0, "c": 1.0}
    assert "grad 2.0000" in data["svg"] and "data 4.0000" in data["svg"]
    neuron = client.post("/api/graph", json={"expr": "n = x*w + b; o = tanh(n)", "rankdir": "TB",
                                              "values": {"x": 2, "w": -3, "b": 6.8813735870195432}}).json()
    assert neuron["label"] == "o" and math.isclose(neuron["value"], 0.7071, abs_tol=1e-4)
    flat = client.post("/api/graph", json={"expr": "a*b", "values": {"a": 1, "b": 2}, "backward": False}).json()
    assert all(n["grad"] == 0 for n in flat["nodes"])


@pytest.mark.parametrize("expr", [
    "a.__class__", "a.data", "__import__('os').system('true')", "open('/etc/passwd')", "print(a)", "exp(a, b)",
    "exp(x=a)", "(lambda: 1)()", "a[0]", "[a, b]", "{a: b}", "import os", "a if b else c", "f'{a}'", "'text'",
    "a < b", "a and b", "a @ b", "a // b", "a ** b", "del a", "a += 1", "b = a = 1", "x", "a.b = 1",
    "exp(exp(exp(10)))", "1/0", "log(-1)", "a*", "",
])
def test_graph_refuses_anything_but_arithmetic(client, expr):
    r = client.post("/api/graph", json={"expr": expr, "values": {"a": 2.0, "b": 3.0, "c": 1.0}})
    assert r.status_code in (400, 422), r.text
    assert r.json()["detail"] and "--var" not in r.json()["detail"]


def test_graph_too_large_is_one_plain_sentence(client):
    r = client.post("/api/graph", json={"expr": "9**9**9**9"})
    assert r.status_code == 400
    assert r.json()["detail"] == "the expression's value is too large for a float (over about 1.8e308)"


def test_graph_limits(client):
    def post(body):
        return client.post("/api/graph", json=body)

    r = post({"expr": "+".join(["a"] * 499), "values": {"a": 1}})
    assert r.status_code == 400 and "at most 200 are drawn" in r.json()["detail"]
    r = post({"expr": "a" * 1001, "values": {}})
    assert r.status_code == 422 and "expr: String should have at most 1000 characters" in r.json()["detail"]
    r = post({"expr": "a", "values": {f"v{i}": 1 for i in range(51)}})
    assert r.status_code == 422 and "values" in r.json()["detail"]
    r = client.post("/api/graph", content=b'{"expr": "a", "values": {"a": 1e999}}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "finite" in r.json()["detail"]
    r = post({"expr": "a", "values": {"a": 1}, "rankdir": "RL"})
    assert r.status_code == 422 and "rankdir" in r.json()["detail"]
    r = post({"expr": "exp(a)*exp(a)", "values": {"a": 700}})
    assert r.status_code == 400 and "not a finite number" in r.json()["detail"]
    r = client.post("/api/graph", content=b"x" * 70_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    # a chunked body (no Content-Length) was read whole, whatever its size
    r = client.post("/api/graph", content=iter([b"x" * 70_000] * 10), headers={"content-type": "application/json"})
    assert r.status_code == 411


def test_static_files_only_from_the_static_folder(client):
    for path in ("/static/%2e%2e/engine.py", "/static/..%2fengine.py", "/static/%2e%2e%2fapp.py",
                 "/static/%2e%2e/%2e%2e/datasets/names.txt", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
                 "/engine.py", "/etc/passwd", "/static/"):
        r = client.get(path)
        assert r.status_code == 404, path


def test_foreign_host_names_are_refused(engine):
    app = create_app(engine, allowed_hosts=["127.0.0.1", "localhost"])
    assert TestClient(app, base_url="http://127.0.0.1:8000").get("/api/info").status_code == 200
    assert TestClient(app, base_url="http://rebound.example:8000").get("/api/info").status_code == 400


def test_openapi_documents_the_limits(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/sample", "/api/next", "/api/graph", "/api/stream", "/api/info"} <= set(spec["paths"])
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/sample"]["get"]["parameters"]}
    assert params["n"]["maximum"] == 1000 and params["temperature"]["exclusiveMinimum"] == 0


def test_docs_are_served_by_the_app(client):
    """/docs loads Swagger UI from this server (FastAPI's own page takes it from a CDN: blank offline)."""
    page = client.get("/docs")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    links = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert "/docs/swagger-ui-bundle.js" in links and "/docs/swagger-ui.css" in links and "/static/docs.js" in links
    assert "//" not in page.text and all(link.startswith("/") for link in links)  # nothing from another host
    for link in links:
        assert client.get(link).status_code == 200, link
    assert "SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").text
    assert client.get("/docs/index.html").status_code == 404  # only the two files the page needs
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc page would load from a CDN


@pytest.fixture(scope="module")
def live(engine):
    """The app on a real socket (uvicorn in a thread): raw requests skip the client's URL clean-up."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("target", ["/static/../engine.py", "/static/../../makemore/cli.py",
                                    "/static/../../../../../../etc/passwd", "/../../etc/passwd",
                                    "/static/..\\engine.py", "/static/%2e%2e/engine.py"])
def test_raw_path_traversal_is_refused(live, target):
    with socket.create_connection(("127.0.0.1", live), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    assert b" 404 " in status or b" 400 " in status, status
    assert b"root:" not in answer and b"import" not in answer


def test_text_model(tmp_path):
    """A text model: samples are continuations, the stream goes on past line ends."""
    from makemore.data import load_corpus
    from makemore.training import TrainConfig, train

    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat.\n\nshe sells sea shells by the sea shore.\n\n" * 20)
    train("bigram-counts", {}, load_corpus(str(path)), TrainConfig(steps=1), tmp_path / "run", progress=False)
    client = TestClient(create_app(Engine(tmp_path / "run", threads=1)))
    assert get(client, "/api/info")["mode"] == "text"
    items = get(client, "/api/sample", n=2, prefix="the", length=50, seed=1)["items"]
    assert len(items) == 2 and all(s.startswith("the") and len(s) == 53 for s in items)
    assert len(get(client, "/api/stream", prefix="the", length=300, seed=1)) == 300
    assert "'unique' needs a model trained on lines" in get(client, "/api/sample", 400, unique="true")["detail"]
    assert get(client, "/api/next", prefix="the ca")["context"] == "a"


def test_cli(tmp_path, capsys):
    from makemore.cli import main

    assert main(["serve", "--out", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--out", str(tmp_path), "--port", "70000"])
    assert "--port: must be between 0 and 65,535" in capsys.readouterr().err


def test_cli_names_a_missing_part_of_the_serve_extra(tmp_path, monkeypatch, capsys):
    import sys

    from makemore.cli import main

    monkeypatch.setitem(sys.modules, "swagger_ui_bundle", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "makemore.serve.app")
    assert main(["serve", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("makemore: error: makemore serve needs the serve extra (swagger_ui_bundle is "
                                       "missing): pip install 'makemore[serve]'\n")
