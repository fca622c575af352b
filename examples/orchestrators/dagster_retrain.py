#!/usr/bin/env python3
"""Hand modelwatch's retraining to Dagster: a receiver for the webhook sink.

modelwatch's trigger engine decides *when* a model must be retrained; this receiver lets
Dagster run the retraining, so that it shows up in Dagster's run history, is retried by
Dagster's policy and sits beside the team's other jobs. It is the worked example of
`docs/decisions/0012-scheduler.md`, tested for real by `tests/orchestrator.rs`.

What it does with a `POST /hooks/retrain` from the webhook sink:

1. Checks the signature, as modelwatch signs (in the style of Stripe's webhooks):
   `X-Modelwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<raw body>")>`.
   A wrong HMAC, a missing header or a `t` more than `--window` seconds (300) from this
   receiver's clock is refused with 401, and nothing runs: a captured request cannot be
   replayed later, nor a forged one run at all.
2. Reads the event (`id`, `model`, `reasons`), checks that `id` matches `X-Modelwatch-Event`.
3. Answers **202 Accepted at once** and queues a run of the Dagster job `modelwatch_retrain`,
   whose one op runs `modelwatch retrain --event <id> --format json`. It must not retrain
   before answering: modelwatch delivers while holding its trigger engine's lock
   (`triggers fire`, `triggers check`), and `modelwatch retrain` takes that lock at its end
   to acknowledge the event, so a receiver that answered after the run would wait on a
   sender waiting on it.
4. Deduplicates by event ID: the sink delivers at least once (a retry after a lost answer),
   and a second delivery of an event queued, running or done is answered 200 and not run
   again. (`modelwatch retrain` is itself idempotent per event, so even a receiver restarted
   between two deliveries does no harm: the second run returns the first one's record.)

Once it has answered 2xx, modelwatch counts the event delivered: from then on retrying is
Dagster's (the op's `RetryPolicy`), and the event stays unacknowledged — listed by
`modelwatch triggers status` — until `modelwatch retrain` acknowledges it with its outcome.
`GET /runs/<event id>` says where a run stands (`queued`, `running`, `succeeded`, `failed`,
the Dagster run ID and modelwatch's outcome).

Run it (Python 3.10+, `pip install -r requirements.txt`):

    MODELWATCH_WEBHOOK_SECRET=... DAGSTER_HOME=/var/lib/dagster \\
      python dagster_retrain.py --listen 127.0.0.1:8787 \\
        --data /var/lib/modelwatch --config /etc/modelwatch.toml

and give modelwatch the sink (`deploy/modelwatch.toml`):

    [[triggers.sinks]]
    type = "webhook"
    url = "http://127.0.0.1:8787/hooks/retrain"
    secret_env = "MODELWATCH_WEBHOOK_SECRET"

With `DAGSTER_HOME` set, runs are kept in that instance (`dagster dev` shows them); without
it, in an ephemeral one. Runs execute in this process, one at a time, in arrival order
(modelwatch runs one retraining per data directory at a time anyway).
"""

import argparse
import hashlib
import hmac
import json
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

# No `from __future__ import annotations`: Dagster reads the op's config type from its
# annotation at definition time.
import dagster as dg

HOOK_PATH = "/hooks/retrain"
MAX_BODY = 1 << 20
# modelwatch keeps the last 64 KiB of a trainer's output; keep as much of the command's.
OUTPUT_TAIL = 64 << 10


def verify(secret: bytes, header: str | None, body: bytes, now: float, window: float) -> str | None:
    """Why the request must be refused, or None when it is signed with `secret` within
    `window` seconds of `now`. Several `v1` values are accepted (one per key while keys
    are rotated); the HMAC is checked over the raw body, before it is parsed."""
    if not header:
        return "no X-Modelwatch-Signature header"
    t, sent = None, []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return f"malformed signature header: {part.strip()!r} is not key=value"
        if key == "t":
            t = value
        elif key == "v1":
            sent.append(value)
    if t is None or not t.isdigit() or not sent:
        return "malformed signature header: needs t=<unix seconds> and v1=<hex>"
    expected = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    # compare_digest on every value: the time taken says nothing about how close a guess was.
    if not any(hmac.compare_digest(expected, s) for s in sent):
        return "signature mismatch (wrong key, or the body was changed)"
    age = now - int(t)
    if abs(age) > window:
        when = f"{age:.0f} s ago" if age > 0 else f"{-age:.0f} s in the future"
        return f"signed at {t}, {when} by this receiver's clock (window {window:.0f} s): refused as a replay"
    return None


class RetrainConfig(dg.Config):
    """One run: the event to retrain on and the `modelwatch retrain` command line before
    `--event` (program, `--data`, `--config` and whatever else the deployment adds)."""

    event_id: str
    command: list[str]


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=30))
def retrain(context: dg.OpExecutionContext, config: RetrainConfig) -> dict:
    """Runs `modelwatch retrain --event ID --format json`; returns its run record.

    An exit that left no outcome (an I/O error, another run holding the lock) is retried by
    the policy: the run resumes where it stopped. A recorded outcome of `failed` (too few
    examples, say) is final — modelwatch has acknowledged it — and is not retried."""
    argv = [*config.command, "--event", config.event_id, "--format", "json"]
    context.log.info("running " + " ".join(argv))
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    try:
        record = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        record = None
    stderr = done.stderr[-OUTPUT_TAIL:]
    if done.returncode != 0:
        final = isinstance(record, dict) and record.get("outcome") is not None
        raise dg.Failure(
            description=f"modelwatch retrain exited {done.returncode}: {stderr.strip() or '(no stderr)'}",
            metadata={"record": dg.MetadataValue.json(record or {})},
            allow_retries=not final,
        )
    if not isinstance(record, dict):
        raise dg.Failure(description=f"modelwatch retrain printed no run record: {done.stdout[:200]!r}")
    context.log.info(f"event {config.event_id}: step {record.get('step')}, outcome {record.get('outcome')}")
    return record


@dg.job(tags={"modelwatch": "retrain"})
def modelwatch_retrain():
    retrain()


class Runs:
    """The events received, each run once, in arrival order, on one worker thread."""

    def __init__(self, command: list[str], instance: dg.DagsterInstance):
        self.command = command
        self.instance = instance
        self.lock = threading.Lock()
        self.runs: dict[str, dict] = {}
        self.pending: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._work, name="dagster-runs", daemon=True).start()

    def submit(self, event: dict) -> bool:
        """Queues the event; False when it is already queued, running or done (a failed
        run is queued again: the delivery is the request to try once more)."""
        with self.lock:
            known = self.runs.get(event["id"])
            if known and known["state"] != "failed":
                return False
            self.runs[event["id"]] = {"event": event["id"], "model": event["model"], "state": "queued"}
        self.pending.put(event["id"])
        return True

    def status(self, event_id: str) -> dict | None:
        with self.lock:
            run = self.runs.get(event_id)
            return dict(run) if run else None

    def _set(self, event_id: str, **fields) -> None:
        with self.lock:
            self.runs[event_id].update(fields)

    def _work(self) -> None:
        while True:
            event_id = self.pending.get()
            self._set(event_id, state="running")
            try:
                result = modelwatch_retrain.execute_in_process(
                    run_config=dg.RunConfig(ops={"retrain": RetrainConfig(event_id=event_id, command=self.command)}),
                    instance=self.instance,
                    tags={"modelwatch/event": event_id},
                    raise_on_error=False,
                )
            except Exception as e:  # a broken instance, say: report it, keep serving
                self._set(event_id, state="failed", error=f"{type(e).__name__}: {e}")
                continue
            if result.success:
                record = result.output_for_node("retrain")
                self._set(event_id, state="succeeded", dagster_run_id=result.run_id,
                          outcome=record.get("outcome"), version=record.get("version"))
            else:
                failures = [ev.message for ev in result.all_events if ev.is_step_failure]
                self._set(event_id, state="failed", dagster_run_id=result.run_id,
                          error=failures[-1] if failures else "the Dagster run failed")


def handler(secret: bytes, window: float, now: Callable[[], float], runs: Runs):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, doc: dict) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                return self.answer(200, {"ok": True})
            if self.path.startswith("/runs/"):
                run = runs.status(self.path[len("/runs/"):])
                return self.answer(200, run) if run else self.answer(404, {"error": "no such event"})
            self.answer(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            if self.path != HOOK_PATH:
                return self.answer(404, {"error": f"no route {self.path}; the hook is {HOOK_PATH}"})
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self.answer(411, {"error": "a Content-Length is required"})
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                return self.answer(413, {"error": f"body of {length} bytes (at most {MAX_BODY})"})
            body = self.rfile.read(length)
            why = verify(secret, self.headers.get("X-Modelwatch-Signature"), body, now(), window)
            if why:
                self.log_message("refused: %s", why)
                return self.answer(401, {"error": why})
            try:
                event = json.loads(body)
                if not (isinstance(event, dict) and isinstance(event.get("id"), str)
                        and isinstance(event.get("model"), str) and event["id"]):
                    raise ValueError("an event needs a string id and model")
            except ValueError as e:
                return self.answer(400, {"error": f"not a modelwatch event: {e}"})
            if event["id"] != self.headers.get("X-Modelwatch-Event"):
                return self.answer(400, {"error": "X-Modelwatch-Event does not match the body's id"})
            if runs.submit(event):
                return self.answer(202, {"accepted": event["id"]})
            self.answer(200, {"duplicate": event["id"], **(runs.status(event["id"]) or {})})

    return Handler


def clock(text: str | None) -> Callable[[], float]:
    """The receiver's clock: the system's, or fixed at `--now` (for tests and demos)."""
    if text is None:
        return time.time
    fixed = float(text) if text.replace(".", "", 1).isdigit() else datetime.fromisoformat(
        text.replace("Z", "+00:00")).timestamp()
    return lambda: fixed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:8787", help="HOST:PORT (port 0: any free one)")
    p.add_argument("--secret-env", default="MODELWATCH_WEBHOOK_SECRET",
                   help="environment variable holding the HMAC key (the sink's secret_env)")
    p.add_argument("--window", type=float, default=300, help="replay window, seconds")
    p.add_argument("--modelwatch", default="modelwatch", help="the modelwatch program")
    p.add_argument("--data", required=True, help="modelwatch's data directory")
    p.add_argument("--config", help="modelwatch's configuration file ([triggers], [retrain], [gate])")
    p.add_argument("--retrain-arg", action="append", default=[],
                   help="one more argument for `modelwatch retrain` (repeatable), e.g. --retrain-arg=--now=...")
    p.add_argument("--now", help="fix this receiver's clock (RFC 3339 or unix seconds): tests and demos only")
    args = p.parse_args()

    secret = os.environ.get(args.secret_env, "").encode()
    if not secret:
        # Unsigned, anyone who can reach the port could start retraining runs.
        print(f"dagster_retrain: set {args.secret_env} to the webhook's HMAC key", file=sys.stderr)
        return 2
    command = [args.modelwatch, "retrain", "--data", args.data]
    if args.config:
        command += ["--config", args.config]
    command += args.retrain_arg
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), handler(secret, args.window, clock(args.now),
                                                             Runs(command, instance)))
    print(f"listening on http://{host}:{server.server_address[1]}{HOOK_PATH}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
