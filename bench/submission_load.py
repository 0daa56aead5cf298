#!/usr/bin/python3
"""submission_load.py - authenticated submission load for bench/submission.sh.

    python3 bench/submission_load.py PORT --user U --password P
        [--sessions 20] [--duration 20] [--per-session 1] [--size 5120]
        [--sender S] [--rcpt R] [--implicit-tls]

Runs SESSIONS client threads against 127.0.0.1:PORT for DURATION seconds.
Each connection: EHLO, STARTTLS (or TLS from the first byte with
--implicit-tls), EHLO, AUTH PLAIN, PER-SESSION messages of SIZE bytes
(MAIL, RCPT, DATA), QUIT; then the thread connects again, until the time
is up. Prints one JSON line: messages accepted (250 after DATA), errors,
connections, elapsed seconds, and the p50/p90 of the AUTH exchange (the
argon2id check) and of the whole connection. Standard library only;
loopback only; every wait bounded (socket timeout 60 s).
"""
import argparse
import json
import smtplib
import ssl
import sys
import threading
import time


def body(size, seq, sender, rcpt):
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: submission %d\r\n\r\n"
            % (sender, rcpt, seq)).encode()
    line = b"x" * 76 + b"\r\n"
    out = bytearray(head)
    while len(out) + len(line) <= size:
        out += line
    return bytes(out)


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--per-session", type=int, default=1)
    ap.add_argument("--size", type=int, default=5120)
    ap.add_argument("--sender", default="bench@bench.example")
    ap.add_argument("--rcpt", default="rcpt@dest.example")
    ap.add_argument("--implicit-tls", action="store_true")
    a = ap.parse_args()

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the gateway's generated certificate
    lock = threading.Lock()
    stats = {"messages": 0, "errors": 0, "connections": 0}
    auth_times, conn_times, first_errors = [], [], []
    start = time.time()
    deadline = start + a.duration

    def worker(n):
        seq = 0
        while time.time() < deadline:
            t0 = time.perf_counter()
            try:
                if a.implicit_tls:
                    s = smtplib.SMTP_SSL("127.0.0.1", a.port, timeout=60, context=ctx)
                    s.ehlo("bench.client")
                else:
                    s = smtplib.SMTP("127.0.0.1", a.port, timeout=60)
                    s.ehlo("bench.client")
                    s.starttls(context=ctx)
                    s.ehlo("bench.client")
                ta = time.perf_counter()
                s.login(a.user, a.password)
                tb = time.perf_counter()
                sent = 0
                for _ in range(a.per_session):
                    seq += 1
                    s.sendmail(a.sender, [a.rcpt], body(a.size, n * 1_000_000 + seq, a.sender, a.rcpt))
                    sent += 1
                s.quit()
                with lock:
                    stats["messages"] += sent
                    stats["connections"] += 1
                    auth_times.append(tb - ta)
                    conn_times.append(time.perf_counter() - t0)
            except Exception as e:  # count and go on: the run reports errors
                with lock:
                    stats["errors"] += 1
                    if len(first_errors) < 3:
                        first_errors.append(repr(e)[:200])
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.duration + 120)
    elapsed = time.time() - start
    stats.update({
        "elapsed": round(elapsed, 3),
        "rate": round(stats["messages"] / elapsed, 1),
        "auth_p50_ms": pct(auth_times, 0.5),
        "auth_p90_ms": pct(auth_times, 0.9),
        "connection_p50_ms": pct(conn_times, 0.5),
        "first_errors": first_errors,
    })
    print(json.dumps(stats), flush=True)
    return 0 if stats["messages"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
