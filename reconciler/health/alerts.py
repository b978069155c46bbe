"""Escalation: a JSON alert POSTed to a webhook and/or appended as one line to a file.

The POST follows no redirect: the spec's headers (credentials) go only to the URL written
in the spec, and a redirected POST (which urllib turns into a GET without the body) would
report an alert as delivered that nobody received.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from reconciler.health.model import Escalate
from reconciler.redaction import Redactor


def send_alert(escalate: Escalate, alert: dict[str, Any], redact: Redactor) -> tuple[bool, str]:
    """Deliver `alert` everywhere the step says; ok when at least one delivery worked."""
    body = json.dumps(alert, sort_keys=True)
    delivered, problems = [], []
    if escalate.file is not None:
        try:
            path = Path(escalate.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as stream:
                stream.write(body + "\n")
            delivered.append(f"appended to {path}")
        except OSError as error:
            problems.append(f"{escalate.file}: {error.strerror or error}")
    if escalate.webhook is not None:
        headers = {k: v.get_secret_value() for k, v in escalate.headers.items()}
        problem = _post(escalate.webhook, body, headers, escalate.timeout.total_seconds())
        if problem is None:
            delivered.append(f"POST {escalate.webhook}")
        else:
            problems.append(problem)
    return bool(delivered), redact("; ".join(delivered + problems))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: the 3xx answer reaches `_post` as an HTTPError."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: str, headers: dict[str, str], timeout: float) -> str | None:
    request = urllib.request.Request(
        url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "reconciler", **headers},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return None
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            moved = (error.headers.get("Location") or "")[:200]
            return (
                f"POST {url}: the webhook redirected the alert (HTTP {error.code} to "
                f"{moved or 'nowhere'}); reconciler follows no redirect, so the spec's "
                "headers go only to the URL written there: write the URL it redirects to"
            )
        return f"POST {url}: status {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"POST {url}: {getattr(error, 'reason', error)}"
