#!/usr/bin/env python3
"""The alert drill: an intentional error reaches a person within 60 seconds.

Runs the real `revledger serve` (fresh SQLite database), the real Prometheus with
ops/prometheus/prometheus.yml and alerts.yml, and the real Alertmanager with
ops/alertmanager/alertmanager.yml, on loopback ports, with only addresses and secret-file paths
replaced. Slack and the SMTP server are local fakes that speak enough of their protocols for
Alertmanager (Slack: an incoming-webhook POST of JSON answered `ok`; SMTP: RFC 5321 without
AUTH or TLS), and keep what they receive.

Two errors, each timed from the moment it happens to the moment the fake Slack has it:
  1. a Calendly delivery for a lead that does not exist, delivered until it is dead-lettered
     (RevledgerDeadLettersGrowing);
  2. the service stopped (RevledgerDown, critical: also by email).
Each must arrive within --deadline seconds (60). Exits 0 when both did, 1 otherwise (printing
the logs). Standard library only; bounded in time; listens on 127.0.0.1 only.

Usage: python3 ops/alert_drill.py [--binary target/debug/revledger] [--deadline 60]
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALENDLY_KEY = "alert-drill-calendly-signing-key"
ADMIN_TOKEN = "rl_alert_drill_" + os.urandom(16).hex()
# adapters::inbox::MAX_ATTEMPTS: the delivery that many times becomes a dead letter.
DEAD_LETTER_AFTER = 8
STARTUP_SECS = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message):
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Inbox:
    """What a fake received, with when; waited on by the drill."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def add(self, item):
        with self.cond:
            self.items.append((time.monotonic(), item))
            self.cond.notify_all()

    def wait_for(self, predicate, deadline):
        with self.cond:
            while True:
                for at, item in self.items:
                    if predicate(item):
                        return at, item
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def fake_slack(inbox):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            try:
                message = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(b"invalid_payload")
                return
            inbox.add({"path": self.path, "message": message})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fake_smtp(inbox):
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line):
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self):
            self.reply("220 drill ESMTP")
            mail = {"to": [], "data": ""}
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                command = line.decode(errors="replace").strip()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250-drill")
                    self.reply("250 8BITMIME")
                elif verb == "MAIL":
                    mail = {"from": command, "to": [], "data": ""}
                    self.reply("250 OK")
                elif verb == "RCPT":
                    mail["to"].append(command)
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while True:
                        data = self.rfile.readline()
                        if not data or data in (b".\r\n", b".\n"):
                            break
                        lines.append(data.decode(errors="replace"))
                    mail["data"] = "".join(lines)
                    inbox.add(mail)
                    self.reply("250 OK queued")
                elif verb == "RSET":
                    self.reply("250 OK")
                elif verb == "NOOP":
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 not implemented")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def replaced(text, replacements, source):
    """Each replacement must match: a changed config breaks the drill loudly, not silently."""
    for old, new in replacements:
        if old not in text:
            raise SystemExit(f"{source} no longer contains {old!r}: update ops/alert_drill.py")
        text = text.replace(old, new)
    return text


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def post(url, body, headers):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_until(what, check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not within {seconds}s")


def alertmanager_binary():
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("Alertmanager is not installed (Debian: prometheus-alertmanager)")


def signed_calendly_delivery(email):
    with open(os.path.join(ROOT, "tests/fixtures/calendly_invitee_canceled.json")) as f:
        event = json.load(f)
    event["payload"]["email"] = email
    event["payload"]["uri"] = "https://api.calendly.com/scheduled_events/DRILL/invitees/DRILL"
    body = json.dumps(event).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(CALENDLY_KEY.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    header = f"t={stamp},v1={digest.hexdigest()}"
    return body, {"Content-Type": "application/json", "Calendly-Webhook-Signature": header}


def slack_alert(alertname, status="FIRING"):
    def matches(item):
        for attachment in item["message"].get("attachments", []):
            title = attachment.get("title", "")
            if title.startswith(status) and alertname in title:
                return True
        return False

    return matches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/debug/revledger"))
    parser.add_argument("--deadline", type=float, default=60.0)
    args = parser.parse_args()
    # The processes run in the scratch directory: a relative path is the caller's.
    args.binary = os.path.abspath(args.binary)

    work = tempfile.mkdtemp(prefix="revledger-alert-drill-")
    processes = {}
    logs = {}
    slack, mail = Inbox(), Inbox()
    slack_server, smtp_server = fake_slack(slack), fake_smtp(mail)
    ok = False
    try:
        secrets = os.path.join(work, "secrets")
        os.mkdir(secrets, 0o700)
        url_file = os.path.join(secrets, "slack_webhook_url")
        with open(url_file, "w") as f:
            f.write(f"http://127.0.0.1:{slack_server.server_address[1]}/services/T0/B0/drill\n")
        password_file = os.path.join(secrets, "smtp_password")
        with open(password_file, "w") as f:
            f.write("drill-smtp-password\n")
        for path in (url_file, password_file):
            os.chmod(path, 0o600)

        ports = {name: free_port() for name in ("api", "metrics", "prometheus", "alertmanager")}
        with open(os.path.join(ROOT, "ops/alertmanager/alertmanager.yml")) as f:
            am_config = replaced(
                f.read(),
                [
                    ("/etc/alertmanager/revledger/slack_webhook_url", url_file),
                    ("/etc/alertmanager/revledger/smtp_password", password_file),
                    ("smtp.example.com:587", f"127.0.0.1:{smtp_server.server_address[1]}"),
                    ("smtp_require_tls: true", "smtp_require_tls: false"),
                ],
                "ops/alertmanager/alertmanager.yml",
            )
        with open(os.path.join(ROOT, "ops/prometheus/prometheus.yml")) as f:
            prom_config = replaced(
                f.read(),
                [
                    ("/etc/prometheus/revledger/alerts.yml", os.path.join(ROOT, "ops/prometheus/alerts.yml")),
                    ('"127.0.0.1:9093"', f'"127.0.0.1:{ports["alertmanager"]}"'),
                    ('"127.0.0.1:9464"', f'"127.0.0.1:{ports["metrics"]}"'),
                ],
                "ops/prometheus/prometheus.yml",
            )
        for name, text in (("alertmanager.yml", am_config), ("prometheus.yml", prom_config)):
            with open(os.path.join(work, name), "w") as f:
                f.write(text)

        def start(name, command, env=None):
            logs[name] = open(os.path.join(work, f"{name}.log"), "w+")
            processes[name] = subprocess.Popen(
                command, stdout=logs[name], stderr=subprocess.STDOUT, env=env, cwd=work
            )

        env = dict(os.environ)
        env.update(
            REVLEDGER_DATABASE_URL=f"sqlite://{work}/events.db",
            REVLEDGER_LISTEN=f"127.0.0.1:{ports['api']}",
            REVLEDGER_METRICS_LISTEN=f"127.0.0.1:{ports['metrics']}",
            REVLEDGER_ADMIN_TOKEN=ADMIN_TOKEN,
            REVLEDGER_WEBHOOKS="calendly",
            REVLEDGER_CALENDLY_SIGNING_KEY=CALENDLY_KEY,
            RUST_LOG="warn",
        )
        start("revledger", [args.binary, "serve"], env)
        start(
            "alertmanager",
            [
                alertmanager_binary(),
                f"--config.file={work}/alertmanager.yml",
                f"--storage.path={work}/alertmanager",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
        )
        start(
            "prometheus",
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={work}/prometheus.yml",
                f"--storage.tsdb.path={work}/prometheus",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
        )
        api = f"http://127.0.0.1:{ports['api']}"
        prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        wait_until("revledger ready", lambda: urllib.request.urlopen(f"{api}/readyz", timeout=2).status == 200, STARTUP_SECS)
        wait_until(
            "Alertmanager ready",
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{ports['alertmanager']}/-/ready", timeout=2).status == 200,
            STARTUP_SECS,
        )

        def holds(query):
            q = urllib.parse.quote(query)
            return bool(http_json(f"{prometheus}/api/v1/query?query={q}")["data"]["result"])

        # Prometheus has scraped the service and holds the dead-letter counter at 0 (two
        # samples), so the first dead letter is an increase, as after any start in production.
        counter = 'revledger_webhook_deliveries_total{provider="calendly",outcome="dead_lettered"}'
        wait_until("Prometheus scraping revledger", lambda: holds('up{job="revledger"} == 1'), STARTUP_SECS)
        wait_until(
            "two scrapes of the dead-letter counter at 0",
            lambda: holds(f"count_over_time({counter}[5m]) >= 2"),
            STARTUP_SECS,
        )
        log("revledger, Prometheus and Alertmanager are up; Prometheus scrapes revledger")

        # Error 1: a delivery that refers to a lead that never comes, until it is dead-lettered.
        body, headers = signed_calendly_delivery("nobody-drill@example.sa")
        answers = [post(f"{api}/webhooks/calendly", body, headers) for _ in range(DEAD_LETTER_AFTER)]
        dead_at = time.monotonic()
        last_status, last_answer = answers[-1]
        if last_status != 202 or not isinstance(last_answer, dict) or last_answer.get("status") != "dead_lettered":
            raise RuntimeError(f"the delivery was not dead-lettered: {answers[-1]}")
        log("error 1: a Calendly delivery dead-lettered")
        got = slack.wait_for(slack_alert("RevledgerDeadLettersGrowing"), dead_at + args.deadline)
        if got is None:
            raise RuntimeError(f"RevledgerDeadLettersGrowing did not reach Slack within {args.deadline:.0f}s")
        log(f"  Slack had RevledgerDeadLettersGrowing {got[0] - dead_at:.1f}s later")

        # Error 2: the service stopped.
        processes["revledger"].send_signal(signal.SIGTERM)
        processes["revledger"].wait(timeout=30)
        stopped_at = time.monotonic()
        log("error 2: revledger stopped")
        got = slack.wait_for(slack_alert("RevledgerDown"), stopped_at + args.deadline)
        if got is None:
            raise RuntimeError(f"RevledgerDown did not reach Slack within {args.deadline:.0f}s")
        log(f"  Slack had RevledgerDown {got[0] - stopped_at:.1f}s later")
        text = json.dumps(got[1]["message"])
        if "ops/RUNBOOK.md#revledgerdown" not in text:
            raise RuntimeError(f"the Slack message does not link the runbook: {text}")
        got = mail.wait_for(lambda m: "RevledgerDown" in m["data"], stopped_at + args.deadline)
        if got is None:
            raise RuntimeError(f"RevledgerDown (critical) did not reach the email inbox within {args.deadline:.0f}s")
        log(f"  email had RevledgerDown {got[0] - stopped_at:.1f}s later")
        ok = True
        log("PASSED: both errors reached Slack within the deadline")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        log(f"FAILED: {error}")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        if not ok:
            for name, handle in logs.items():
                handle.seek(0)
                print(f"----- {name} (last lines)")
                print("".join(handle.readlines()[-40:]))
            print("----- Slack received:", json.dumps([item for _, item in slack.items], indent=1)[:4000])
        for handle in logs.values():
            handle.close()
        slack_server.shutdown()
        smtp_server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
