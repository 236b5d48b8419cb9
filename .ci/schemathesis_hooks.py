"""Hooks for the bounded schemathesis run in `.ci/run`.

A real client sends a fresh `Idempotency-Key` with every new request and
reuses it only to retry the same one. The fuzzer draws keys from the schema,
so it sends one key with different bodies, which the server rightly refuses
(`422 idempotency_key_reused`). Valid keys are made unique here; invalid or
missing ones are left as drawn, so the negative cases still test the refusal.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Each call a fresh valid key, as a client sends for a new request."""
    for name in list(case.headers or {}):
        value = case.headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.match(value):
            case.headers[name] = f"fuzz-{uuid.uuid4()}"
