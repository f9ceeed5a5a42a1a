"""Alert delivery against a real HTTP receiver on 127.0.0.1: payload shape, POST, and a webhook that fails."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from churn_assets.alerting.notify import Alert, log_line, send_alert, slack_payload

SECRET_PATH = "/services/T0000/B0000/s3cr3t-token"


class Receiver:
    """A webhook on 127.0.0.1 (ephemeral port) recording each POST; answers ``status`` after ``delay`` s."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.posts: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(
                    {
                        "path": self.path,
                        "content_type": self.headers["Content-Type"],
                        "body": json.loads(body),
                    }
                )
                time.sleep(delay)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:  # keep the test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{SECRET_PATH}"

    @property
    def texts(self) -> list[str]:
        return [post["body"]["text"] for post in self.posts]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours proxy variables; the local receiver must be reached directly."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("tests.alerting")


ALERT = Alert(
    kind="run_failure",
    title="churn_main run 1a2b3c4d failed",
    lines=("step boom: ValueError: bad column 'tenure'\n  second line", "assets: <raw> & more"),
    severity="error",
    link="http://127.0.0.1:3000/runs/1a2b3c4d-0000",
    run_id="1a2b3c4d-0000",
)


def test_log_line_is_one_line_with_kind_title_and_details() -> None:
    line = log_line(ALERT)
    assert line == (
        "ALERT [run_failure] churn_main run 1a2b3c4d failed: "
        "step boom: ValueError: bad column 'tenure' second line; assets: <raw> & more"
    )
    assert "\n" not in log_line(Alert("x", "t", ("a" * 5000,)))
    assert len(log_line(Alert("x", "t", ("a" * 5000,)))) <= 1000


def test_slack_payload_has_text_fallback_and_blocks() -> None:
    payload = slack_payload(ALERT)
    assert payload["text"].startswith("ALERT [run_failure] churn_main run 1a2b3c4d failed")
    assert "&lt;raw&gt; &amp; more" in payload["text"]  # Slack mrkdwn escaping: no forged links
    header, section, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": ":red_circle: churn_main run 1a2b3c4d failed", "emoji": True},
    }
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].splitlines() == [
        "• step boom: ValueError: bad column 'tenure' second line",
        "• assets: &lt;raw&gt; &amp; more",
    ]
    assert context["type"] == "context"
    context_text = context["elements"][0]["text"]
    assert "`1a2b3c4d-0000`" in context_text
    assert "<http://127.0.0.1:3000/runs/1a2b3c4d-0000|open in Dagster>" in context_text
    json.dumps(payload)  # serialisable as is


def test_slack_payload_respects_slack_limits() -> None:
    payload = slack_payload(Alert("freshness", "t" * 400, ("x" * 9000,), severity="warning"))
    header, section, _ = payload["blocks"]
    assert header["text"]["text"].startswith(":warning: ")
    assert len(header["text"]["text"]) <= 150
    assert len(section["text"]["text"]) <= 3000
    assert [block["type"] for block in slack_payload(Alert("k", "no details"))["blocks"]] == [
        "header",
        "context",
    ]


def test_posts_the_payload_as_json(
    receiver: Receiver, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=logger.name):
        assert send_alert(ALERT, receiver.url, logger) is True
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["path"] == SECRET_PATH
    assert post["content_type"] == "application/json"
    assert post["body"] == slack_payload(ALERT)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.ERROR, log_line(ALERT))]


def test_without_a_url_it_only_logs(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    warning = Alert("check_failed", "check a:b failed (WARN)", severity="warning")
    with caplog.at_level(logging.INFO, logger=logger.name):
        assert send_alert(warning, None, logger) is False
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "ALERT [check_failed] check a:b failed (WARN)")
    ]


def _refused_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"


def _assert_failed_quietly(
    url: str, logger: logging.Logger, caplog: pytest.LogCaptureFixture, reason: str, timeout: float = 5.0
) -> None:
    with caplog.at_level(logging.INFO, logger=logger.name):
        assert send_alert(ALERT, url, logger, timeout=timeout) is False
    alert_record, failure = caplog.records
    assert alert_record.getMessage() == log_line(ALERT)
    assert failure.levelno == logging.WARNING
    assert failure.getMessage().startswith("alert webhook on 127.0.0.1:")
    assert reason in failure.getMessage()
    for record in caplog.records:  # the URL is a secret: neither it nor its path is logged
        assert "s3cr3t" not in record.getMessage()
        assert SECRET_PATH not in record.getMessage()


def test_webhook_refusing_the_connection_returns_false_and_warns(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    _assert_failed_quietly(_refused_url(), logger, caplog, "ConnectionRefusedError")


def test_webhook_answering_500_returns_false_and_warns(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver(status=500) as failing:
        _assert_failed_quietly(failing.url, logger, caplog, "HTTP 500")
        assert len(failing.posts) == 1


def test_webhook_timing_out_returns_false_and_warns(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver(delay=2.0) as slow:
        started = time.monotonic()
        _assert_failed_quietly(slow.url, logger, caplog, "timed out", timeout=0.3)
        assert time.monotonic() - started < 1.5


def test_a_non_http_url_is_not_called(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=logger.name):
        assert send_alert(ALERT, "file:///etc/passwd", logger) is False
    assert "not http(s)" in caplog.records[-1].getMessage()
    assert "/etc/passwd" not in caplog.text
