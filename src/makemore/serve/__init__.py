"""The web playground (`makemore serve`): sample in the browser, see why the model picks each character, draw
micrograd graphs. Needs the `serve` extra (FastAPI, uvicorn); nothing here is imported by the rest of makemore."""
