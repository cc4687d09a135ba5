"""The playground's web app: two static pages and a small JSON API, every parameter bounded.

Model calls go through `Engine` (serve/engine.py); micrograd expressions through serve/expr.py. Errors in what
a client sends are a 4xx with {"detail": "one clear sentence"}.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from swagger_ui_bundle import swagger_ui_path

from makemore import __version__
from makemore.errors import MakemoreError
from makemore.serve.engine import Engine
from makemore.serve.expr import MAX_EXPR, MAX_VALUES, Unavailable, build_graph

MAX_N = 1000
MAX_LENGTH = 2000
MAX_BODY = 64 * 1024  # bytes of request body; a graph request is well under 2 KB
STATIC = resources.files("makemore") / "serve" / "static"
# /docs: Swagger UI's two files from the swagger-ui-bundle-v2 package; FastAPI's own /docs page fetches them from a
# CDN, so it was blank offline.
SWAGGER_UI = {"swagger-ui-bundle.js": swagger_ui_path / "swagger-ui-bundle.js",
              "swagger-ui.css": swagger_ui_path / "swagger-ui.css"}
# Only our own files run on the pages: no CDN, nothing inline except the drawn SVG's attributes.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

Temperature = Annotated[float, Query(gt=0, le=10, description="divides the logits: < 1 sharper, > 1 flatter")]
TopK = Annotated[int | None, Query(ge=1, le=1000, description="sample only from the k likeliest characters")]
Prefix = Annotated[str, Query(max_length=MAX_LENGTH, description="text the output starts with; known characters only")]
Seed = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="fixes the draw (default: a fresh seed)")]


class Prob(BaseModel):
    char: str
    p: float


class SampleOut(BaseModel):
    items: list[str]
    seed: int


class NextOut(BaseModel):
    prefix: str
    context: str = Field(description="what the model reads for its next character (a window, or the whole prefix "
                                     "for recurrent models)")
    probs: list[Prob] = Field(description="P(next character), in vocabulary order; in lines mode the first "
                              "entry is the end of the item")


class GraphIn(BaseModel):
    expr: str = Field(min_length=1, max_length=MAX_EXPR, examples=["a*b + c"])
    values: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=MAX_VALUES, examples=[{"a": 2.0, "b": -3.0, "c": 10.0}])
    backward: bool = True
    rankdir: str = Field("LR", pattern="^(LR|TB)$")


class Node(BaseModel):
    label: str
    op: str
    data: float
    grad: float


class GraphOut(BaseModel):
    value: float
    label: str
    svg: str
    nodes: list[Node]


def create_app(engine: Engine, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app serving `engine`'s model; with `allowed_hosts`, requests naming another Host are refused (a page
    elsewhere cannot reach a loopback server by pointing its own domain name at 127.0.0.1)."""
    app = FastAPI(title="makemore playground", version=__version__,
                  description="Sample from a trained makemore model, see its next-character probabilities, and "
                  "draw micrograd expression graphs.",
                  docs_url=None, redoc_url=None)  # our own /docs below: FastAPI's load their assets from CDNs

    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if "transfer-encoding" in request.headers:  # a chunked body has no length to check before it is read
            return JSONResponse({"detail": "a request body needs a Content-Length"}, status_code=411)
        size = request.headers.get("content-length", "0")
        if not size.isdigit() or int(size) > MAX_BODY:
            return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    @app.exception_handler(MakemoreError)
    async def user_error(request: Request, exc: MakemoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable line per problem ("n: Input should be less than or equal to 1000"), not pydantic's dump.
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/micrograd", include_in_schema=False)
    def micrograd() -> FileResponse:
        return FileResponse(str(STATIC / "micrograd.html"))

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(str(STATIC / "docs.html"))

    @app.get("/docs/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in SWAGGER_UI:
            raise HTTPException(404)
        return FileResponse(str(SWAGGER_UI[name]))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")  # refuses paths outside the folder

    @app.get("/api/info", summary="The loaded model: name, mode, vocabulary, context size")
    def info() -> dict[str, Any]:
        return engine.info()

    @app.get("/api/sample", response_model=SampleOut, summary="Generate n items (lines) or continuations (text)")
    def sample(n: Annotated[int, Query(ge=1, le=MAX_N)] = 20, temperature: Temperature = 1.0, top_k: TopK = None,
               prefix: Prefix = "", seed: Seed = None,
               unique: Annotated[bool, Query(description="drop items found in the training data")] = False,
               length: Annotated[int | None, Query(ge=1, le=MAX_LENGTH, description="characters generated at "
                                                   "most (default 64 for lines, 500 for text)")] = None) -> Any:
        items, used = engine.sample(n, temperature=temperature, top_k=top_k, prefix=prefix, seed=seed,
                                    unique=unique, max_len=length)
        return {"items": items, "seed": used}

    @app.get("/api/next", response_model=NextOut, summary="The model's next-character probabilities after prefix")
    def next_char(prefix: Prefix = "", temperature: Temperature = 1.0, top_k: TopK = None) -> Any:
        probs = engine.next_probs(prefix, temperature=temperature, top_k=top_k)
        return {"prefix": prefix, "context": engine.context(prefix),
                "probs": [{"char": c, "p": p} for c, p in zip(engine.itos, probs, strict=True)]}

    @app.get("/api/stream", summary="Stream a continuation of prefix, one character at a time (text/plain)",
             response_class=StreamingResponse)
    def stream(prefix: Prefix = "", length: Annotated[int, Query(ge=1, le=MAX_LENGTH)] = 500,
               temperature: Temperature = 1.0, top_k: TopK = None, seed: Seed = None) -> StreamingResponse:
        engine.encode(prefix)  # refuse unknown characters before the 200 goes out
        chars = engine.stream(prefix, length, temperature=temperature, top_k=top_k, seed=seed)
        return StreamingResponse(chars, media_type="text/plain; charset=utf-8")

    @app.post("/api/graph", response_model=GraphOut, summary="Draw a micrograd expression's graph (SVG) after "
              "backward; no eval: numbers, names, + - * / **, exp log tanh relu sigmoid")
    def graph(body: Annotated[GraphIn, Body()]) -> Any:
        return build_graph(body.expr, body.values, backward=body.backward, rankdir=body.rankdir)

    return app
