"""Alerts: a run-failure sensor, failed asset checks and freshness changes, as one log line each and
optionally a Slack-compatible webhook POST (``CHURN_ALERT_WEBHOOK_URL``).

``notify`` is plain Python (payload, delivery); ``sensors`` holds the Dagster sensors (``ALERT_SENSORS``).
"""
