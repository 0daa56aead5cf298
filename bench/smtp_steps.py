#!/usr/bin/env python3
"""smtp_steps.py - time each step of one SMTP session, one session at a time.

    python3 bench/smtp_steps.py PORT [N]

Opens N (default 500) sessions to 127.0.0.1:PORT, one after another, each
sending one 5 KiB message from a@corp.example to b@ext.example, and prints
p50 and mean per step: connect + greeting, EHLO, MAIL, RCPT, DATA (354),
the message data up to the reply after "." ("dot"), QUIT, and the whole
session. Run it against sealpost and against smtp-sink on the same
machine in turn: the difference per step shows where one session's time
goes. A diagnostic for bench/RESULTS.md, not the benchmark (that is
bench/relay.sh). Loopback only.
"""
import socket
import statistics
import sys
import time

STEPS = ["connect+greeting", "EHLO", "MAIL", "RCPT", "DATA", "dot", "QUIT", "total"]


def read_reply(sock):
    """Reads one whole (possibly multi-line) reply."""
    buf = b""
    for _ in range(1000):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
        lines = buf.split(b"\r\n")
        if len(lines) >= 2 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return buf
    raise ConnectionError("reply too long")


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    body = ("Subject: t\r\n\r\n" + ("x" * 76 + "\r\n") * 66).encode()
    times = {k: [] for k in STEPS}
    for _ in range(n):
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_reply(s)
        times["connect+greeting"].append(time.perf_counter() - t0)
        for name, cmd in [
            ("EHLO", b"EHLO client.example\r\n"),
            ("MAIL", b"MAIL FROM:<a@corp.example>\r\n"),
            ("RCPT", b"RCPT TO:<b@ext.example>\r\n"),
            ("DATA", b"DATA\r\n"),
        ]:
            t = time.perf_counter()
            s.sendall(cmd)
            read_reply(s)
            times[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        s.sendall(body + b".\r\n")
        reply = read_reply(s)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"message refused: {reply!r}")
        times["dot"].append(time.perf_counter() - t)
        t = time.perf_counter()
        s.sendall(b"QUIT\r\n")
        read_reply(s)
        s.close()
        times["QUIT"].append(time.perf_counter() - t)
        times["total"].append(time.perf_counter() - t0)
    for name in STEPS:
        v = sorted(times[name])
        print(f"{name:17s} p50 {v[len(v) // 2] * 1e6:7.0f} us  mean {statistics.mean(v) * 1e6:7.0f} us")


if __name__ == "__main__":
    main()
