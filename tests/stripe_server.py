"""localstripe, a stateful fake Stripe server from PyPI, started once per test worker.

Tests talk to it through the official ``stripe`` SDK exactly as production talks to Stripe. What a
browser does with Stripe.js (confirm the card, pass 3-D Secure) is done here with the same HTTP
calls localstripe's own Stripe.js makes, so no test needs a hand-written fake of the SDK.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

SECRET_KEY = "sk_test_civicpay"
PUBLISHABLE_KEY = "pk_test_civicpay"
WEBHOOK_SECRET = "whsec_test_civicpay_webhooks"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def localstripe_server(workdir: Path) -> Iterator[str]:
    """Run localstripe on a free loopback port; yield its base URL."""
    port = free_port()
    log = (workdir / "localstripe.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{url}/v1/customers", auth=(SECRET_KEY, ""), timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"localstripe did not start; see {workdir / 'localstripe.log'}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def stripe_settings(url: str) -> dict[str, Any]:
    """App settings that point the Stripe provider at this localstripe."""
    return {
        "CARD_PROVIDER": "stripe",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": url,
        "STRIPE_JS_URL": f"{url}/js.stripe.com/v3/",
    }


# -- what the browser does through Stripe.js -------------------------------------------------------


def browser_confirm_card_setup(url: str, client_secret: str, number: str, *, pass_3ds: bool = True) -> dict[str, Any]:
    """Stripe.js confirmCardSetup with a typed card (and the 3-D Secure dialog answered)."""
    setup_id = client_secret.split("_secret_")[0]
    body = {
        "key": PUBLISHABLE_KEY,
        "use_stripe_sdk": True,
        "client_secret": client_secret,
        "payment_method_data": {
            "type": "card",
            "card": {"number": number.replace(" ", ""), "exp_month": "12", "exp_year": "2030", "cvc": "123"},
            "billing_details": {"address": {"postal_code": "10431"}},
        },
    }
    answer = requests.post(f"{url}/v1/setup_intents/{setup_id}/confirm", data=json.dumps(body), timeout=10).json()
    if answer.get("status") == "requires_action":
        step = "confirm" if pass_3ds else "cancel"
        again = {"key": PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": client_secret}
        answer = requests.post(f"{url}/v1/setup_intents/{setup_id}/{step}", data=json.dumps(again), timeout=10).json()
    return answer


def browser_authenticate(url: str, client_secret: str, *, success: bool) -> dict[str, Any]:
    """Stripe.js confirmCardPayment: the card holder passes or fails 3-D Secure."""
    intent_id = client_secret.split("_secret_")[0]
    return requests.post(
        f"{url}/v1/payment_intents/{intent_id}/_authenticate?success={'true' if success else 'false'}",
        data=json.dumps({"key": PUBLISHABLE_KEY, "client_secret": client_secret}),
        timeout=10,
    ).json()


# -- webhooks ----------------------------------------------------------------------------------------


def stripe_events(url: str, event_type: str | None = None) -> list[dict[str, Any]]:
    """The events localstripe recorded, newest first (as Stripe's Event list)."""
    events = requests.get(f"{url}/v1/events", params={"limit": 100}, auth=(SECRET_KEY, ""), timeout=10).json()["data"]
    return [event for event in events if event_type is None or event["type"] == event_type]


def stripe_event_ids(url: str) -> set[str]:
    """The ids of every event localstripe has recorded (all pages of its list)."""
    ids: list[str] = []
    while True:
        params: dict[str, Any] = {"limit": 100, **({"starting_after": ids[-1]} if ids else {})}
        page = requests.get(f"{url}/v1/events", params=params, auth=(SECRET_KEY, ""), timeout=10).json()
        ids.extend(event["id"] for event in page["data"])
        if not page["has_more"]:
            return set(ids)


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for ``payload``, made the way Stripe signs webhooks."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
