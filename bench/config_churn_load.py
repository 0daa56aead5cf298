#!/usr/bin/env python3
"""config_churn_load.py - SMTP load that times end of DATA -> 250.

    python3 bench/config_churn_load.py PORT SECONDS OUT [SESSIONS] [PAUSE_MS]

SESSIONS (default 4) threads each keep one SMTP session open to
127.0.0.1:PORT and send 5 KiB messages on it (MAIL, RCPT, DATA, then RSET
before the next), pausing PAUSE_MS (default 10) between messages, for
SECONDS. For every message the time from sending the final "." to reading
the 250 is written to OUT, one line "<unix time> <seconds>", so the caller
can split the samples by phase. A refused message is counted and printed;
the exit status is 1 if any was refused. Loopback only.
"""
import socket
import sys
import threading
import time


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


def session(port, until, pause, samples, refused, k):
    body = ("Subject: churn\r\n\r\n" + ("x" * 76 + "\r\n") * 66).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    read_reply(s)
    s.sendall(b"EHLO load.example\r\n")
    read_reply(s)
    n = 0
    while time.time() < until:
        n += 1
        for cmd in (
            b"MAIL FROM:<a@corp.example>\r\n",
            f"RCPT TO:<b{k}.{n}@ext.example>\r\n".encode(),
            b"DATA\r\n",
        ):
            s.sendall(cmd)
            read_reply(s)
        t = time.perf_counter()
        s.sendall(body + b".\r\n")
        reply = read_reply(s)
        elapsed = time.perf_counter() - t
        if reply.startswith(b"250"):
            samples.append((time.time(), elapsed))
        else:
            refused.append(reply)
        s.sendall(b"RSET\r\n")
        read_reply(s)
        time.sleep(pause)
    s.sendall(b"QUIT\r\n")
    s.close()


def main():
    port = int(sys.argv[1])
    seconds = float(sys.argv[2])
    out = sys.argv[3]
    sessions = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    pause = (int(sys.argv[5]) if len(sys.argv) > 5 else 10) / 1000
    until = time.time() + seconds
    samples, refused = [], []
    threads = [
        threading.Thread(target=session, args=(port, until, pause, samples, refused, k))
        for k in range(sessions)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    with open(out, "w") as f:
        for at, elapsed in sorted(samples):
            f.write(f"{at:.6f} {elapsed:.6f}\n")
    if refused:
        print(f"refused: {len(refused)}, first: {refused[0]!r}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
