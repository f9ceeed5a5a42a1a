"""The server's own pages, without starting workers: documentation that works offline."""

import re

from fastapi.testclient import TestClient

from serving.config import ServeSettings
from serving.server import build_server


def test_docs_page_loads_swagger_ui_from_the_server_itself_not_a_cdn(tmp_path):
    app = build_server(ServeSettings(home=tmp_path, batch_limit=7)).app
    client = TestClient(app)  # no lifespan: no workers are started

    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN page is gone


def test_openapi_documents_the_configured_batch_limit(tmp_path):
    schema = TestClient(build_server(ServeSettings(home=tmp_path, batch_limit=7)).app).get("/openapi.json")
    batch = schema.json()["components"]["schemas"]["BatchRequest"]
    assert batch["maxItems"] == 7 and batch["minItems"] == 1
