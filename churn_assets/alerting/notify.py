"""Alert delivery: one clear log line, plus a Slack-compatible webhook POST when a URL is configured.

Plain Python, no Dagster, so the payload and the failure handling are tested without an instance. The
sensors in ``sensors`` build ``Alert``s and hand them to ``send_alert``.

Two rules hold whatever happens:

* alerting never breaks its caller: a webhook that refuses, errs or hangs costs one warning and
  ``send_alert`` returns False; an exception would fail the sensor tick, and with it every later alert;
* the webhook URL is a secret (for Slack the path is the credential): it is never logged, only its host.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

TIMEOUT_S = 5.0
"""A webhook slower than this is given up on: a sensor tick has to stay short."""

MAX_LOG_CHARS = 1000
"""A stack of long error messages still makes one readable line."""

# Slack's limits for the text of a header block and of a section block.
_MAX_HEADER_CHARS = 150
_MAX_SECTION_CHARS = 3000

_ICONS: dict[str, str] = {"error": ":red_circle:", "warning": ":warning:"}


@dataclass(frozen=True)
class Alert:
    """Something an operator should look at.

    ``kind`` (``run_failure``, ``check_failed``, ``freshness``) opens the log line, so that
    ``grep 'ALERT \\[check_failed\\]'`` finds one kind; ``title`` says what happened in one line;
    ``lines`` are the details, one fact each (the failing step and its error, a check's metadata).
    ``link`` points at the Dagster UI page to open, ``run_id`` names the run concerned, if any.
    """

    kind: str
    title: str
    lines: tuple[str, ...] = ()
    severity: Severity = "error"
    link: str | None = None
    run_id: str | None = None


def log_line(alert: Alert) -> str:
    """The alert as one line: ``ALERT [kind] title: detail; detail``.

    Whitespace (newlines of multi-line error messages included) collapses to single spaces, so one
    alert is always exactly one line of the log, whatever the error text looks like.
    """
    text = f"ALERT [{alert.kind}] {alert.title}"
    if alert.lines:
        text += ": " + "; ".join(alert.lines)
    return _shorten(" ".join(text.split()), MAX_LOG_CHARS)


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification and fallback) plus ``blocks``.

    Other Slack-compatible receivers (Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint) read
    ``text`` and ignore or render the blocks. Text is escaped for Slack's mrkdwn (``&``, ``<``, ``>``)
    so that an error message cannot forge links or mentions.
    """
    header = f"{_ICONS[alert.severity]} {' '.join(alert.title.split())}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _shorten(header, _MAX_HEADER_CHARS), "emoji": True},
        }
    ]
    if alert.lines:
        details = "\n".join(f"• {_escape(' '.join(line.split()))}" for line in alert.lines)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _shorten(details, _MAX_SECTION_CHARS)}}
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(alert)}]})
    return {"text": _escape(log_line(alert)), "blocks": blocks}


def send_alert(
    alert: Alert, webhook_url: str | None, logger: logging.Logger, timeout: float = TIMEOUT_S
) -> bool:
    """Log the alert (always, one line), then POST it to ``webhook_url`` if one is set.

    Returns True only when the webhook accepted the alert (a 2xx answer). No URL, a refused
    connection, an HTTP error or a timeout return False; the last three after a warning naming the
    webhook's host (never its URL) and the reason. Nothing is raised.
    """
    report = logger.error if alert.severity == "error" else logger.warning
    report(log_line(alert))
    if not webhook_url:
        return False
    host = webhook_host(webhook_url)
    if urllib.parse.urlsplit(webhook_url).scheme not in ("http", "https"):
        logger.warning(
            f"alert webhook on {host} not called: its URL is not http(s); the alert was only logged"
        )
        return False
    try:
        _post_json(webhook_url, slack_payload(alert), timeout)
    except Exception as exc:  # whatever goes wrong, the caller's tick must go on (see module docstring)
        logger.warning(
            f"alert webhook on {host} failed ({_reason(exc, webhook_url)}); the alert was only logged"
        )
        return False
    return True


def webhook_host(url: str) -> str:
    """The part of the webhook URL that may be logged: host and port, no credentials, no path."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port else host


def _post_json(url: str, payload: dict[str, Any], timeout: float) -> None:
    """POST ``payload`` as JSON; raises on a connection error, a timeout or a non-2xx answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310 # scheme checked by the caller (http or https only)
        response.read()
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, response.reason, response.headers, None)


def _reason(exc: Exception, url: str) -> str:
    """Why the POST failed, in words safe to log (the URL, if an error repeats it, is masked)."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    else:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        text = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause)
    for secret in (url, urllib.parse.urlsplit(url).path):
        if len(secret) > 1:
            text = text.replace(secret, "<webhook>")
    return text


def _context(alert: Alert) -> str:
    parts = [f"*{alert.severity}* · {alert.kind}"]
    if alert.run_id:
        parts.append(f"run `{alert.run_id}`")
    if alert.link:
        parts.append(f"<{alert.link}|open in Dagster>")
    return " · ".join(parts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
