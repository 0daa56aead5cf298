#!/usr/bin/python3
"""Helpers for bench/relay.sh (standard library only; loopback only).

Subcommands
  run OUT -- CMD...        run CMD, write {"start","end","rc","utime","stime"} to OUT
  waitsink FILE N TIMEOUT  poll an `smtp-sink -c` counter file until mesg >= N;
                           prints "DONE <epoch> <mesg>" (exit 0) or
                           "TIMEOUT <epoch> <mesg>" (exit 1)
  latency HOST PORT ...    time end-of-DATA ("." sent) -> 250, over S sessions;
                           prints one JSON line
  idle HOST PORT COUNT     open COUNT connections, read each greeting, print
                           "HOLDING ok=N failed=M", hold until SIGTERM/SIGINT or
                           --max-hold seconds, print "ALIVE n closed m", exit
  http URL                 GET URL (admin endpoint) and print the body
  cpu PID...               print utime+stime (seconds) of each PID, plus
                           cutime+cstime (reaped children)

Every wait is bounded; every address must be loopback.
"""

import asyncio
import ipaddress
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def require_loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit("relay_helper: refusing non-loopback address %r" % host)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------- run
def cmd_run(argv):
    out = argv[0]
    assert argv[1] == "--"
    cmd = argv[2:]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    rc = subprocess.call(cmd)
    end = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        json.dump({"start": start, "end": end, "rc": rc,
                   "utime": after.ru_utime - before.ru_utime,
                   "stime": after.ru_stime - before.ru_stime}, f)
    return rc


# ---------------------------------------------------------------- waitsink
MESG_RE = re.compile(rb"mesg=(\d+)")


def sink_count(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read()
    except FileNotFoundError:
        return 0
    found = MESG_RE.findall(tail)
    return int(found[-1]) if found else 0


def cmd_waitsink(argv):
    path, want, timeout = argv[0], int(argv[1]), float(argv[2])
    deadline = time.time() + timeout
    next_note = time.time() + 15
    n = 0
    while True:
        n = sink_count(path)
        now = time.time()
        if n >= want:
            print("DONE %.6f %d" % (now, n), flush=True)
            return 0
        if now >= deadline:
            print("TIMEOUT %.6f %d" % (now, n), flush=True)
            return 1
        if now >= next_note:
            sys.stderr.write("  ... sink has %d/%d\n" % (n, want))
            next_note = now + 15
        time.sleep(0.01)


# ----------------------------------------------------------------- latency
def make_body(size, seq):
    head = ("From: <bench@sender.example>\r\nTo: <rcpt@dest.example>\r\n"
            "Subject: latency %d\r\nMessage-ID: <lat-%d-%d@bench.example>\r\n\r\n"
            % (seq, os.getpid(), seq)).encode()
    line = b"x" * 76 + b"\r\n"
    body = bytearray(head)
    while len(body) + len(line) <= size:
        body += line
    return bytes(body)


async def read_reply(reader, timeout):
    # asyncio.timeout is much cheaper than wait_for (no extra task per read),
    # which keeps the client's own overhead out of the latency numbers.
    lines = []
    while True:
        async with asyncio.timeout(timeout):
            line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


async def latency_session(host, port, state, size, timeout, samples, errors):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except Exception as e:  # noqa: BLE001
        errors.append("connect: %s" % e)
        return
    try:
        code, _ = await read_reply(reader, timeout)
        if code != 220:
            raise RuntimeError("greeting %d" % code)
        writer.write(b"EHLO latency.bench.example\r\n")
        code, _ = await read_reply(reader, timeout)
        if code != 250:
            raise RuntimeError("EHLO %d" % code)
        while state["left"] > 0:
            state["left"] -= 1
            seq = state["seq"] = state["seq"] + 1
            body = make_body(size, seq)
            for cmd, want in ((b"MAIL FROM:<bench@sender.example>\r\n", 250),
                              (b"RCPT TO:<rcpt@dest.example>\r\n", 250),
                              (b"DATA\r\n", 354)):
                writer.write(cmd)
                code, text = await read_reply(reader, timeout)
                if code != want:
                    raise RuntimeError("%s -> %r" % (cmd.strip().decode(), text))
            writer.write(body)
            await writer.drain()
            t0 = time.perf_counter()
            writer.write(b".\r\n")
            code, text = await read_reply(reader, timeout)
            dt = time.perf_counter() - t0
            if code != 250:
                raise RuntimeError("end of DATA -> %r" % text)
            samples.append(dt)
        writer.write(b"QUIT\r\n")
        await read_reply(reader, timeout)
    except Exception as e:  # noqa: BLE001
        errors.append("%s: %s" % (type(e).__name__, e))
    finally:
        writer.close()


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


async def latency_main(host, port, sessions, messages, size, timeout, budget):
    state = {"left": messages, "seq": 0}
    samples, errors = [], []
    start = time.perf_counter()
    tasks = [asyncio.create_task(latency_session(host, port, state, size, timeout, samples, errors))
             for _ in range(sessions)]
    done, pending = await asyncio.wait(tasks, timeout=budget)
    for t in pending:
        t.cancel()
    if pending:
        errors.append("budget of %ss exceeded, %d sessions cancelled" % (budget, len(pending)))
    elapsed = time.perf_counter() - start
    s = sorted(samples)
    return {
        "messages": len(s), "sessions": sessions, "size": size,
        "elapsed_s": round(elapsed, 3),
        "p50_ms": round(pct(s, 50) * 1000, 3), "p90_ms": round(pct(s, 90) * 1000, 3),
        "p99_ms": round(pct(s, 99) * 1000, 3),
        "max_ms": round((s[-1] if s else float("nan")) * 1000, 3),
        "mean_ms": round((sum(s) / len(s) if s else float("nan")) * 1000, 3),
        "errors": len(errors), "first_errors": errors[:5],
    }


def cmd_latency(argv):
    import argparse
    p = argparse.ArgumentParser(prog="relay_helper.py latency")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--budget", type=float, default=300)
    a = p.parse_args(argv)
    require_loopback(a.host)
    res = asyncio.run(latency_main(a.host, a.port, a.sessions, a.messages, a.size,
                                   a.timeout, a.budget))
    print(json.dumps(res), flush=True)
    return 0 if res["errors"] == 0 and res["messages"] == a.messages else 1


# -------------------------------------------------------------------- idle
async def idle_main(host, port, count, concurrency, timeout, max_hold):
    conns, failures = [], []
    sem = asyncio.Semaphore(concurrency)

    async def one():
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout)
            except Exception as e:  # noqa: BLE001
                failures.append("connect: %s" % e)
                return
            try:
                line = await asyncio.wait_for(reader.readline(), timeout)
                if not line.startswith(b"220"):
                    failures.append("greeting %r" % line[:60])
                    writer.close()
                    return
                # drain a multi-line greeting, if any
                while line[3:4] == b"-":
                    line = await asyncio.wait_for(reader.readline(), timeout)
            except Exception as e:  # noqa: BLE001
                failures.append("greeting: %s" % e)
                writer.close()
                return
            conns.append((reader, writer))

    t0 = time.time()
    await asyncio.gather(*(one() for _ in range(count)))
    print("HOLDING ok=%d failed=%d open_s=%.2f%s" % (
        len(conns), len(failures), time.time() - t0,
        (" first_failure=%r" % failures[0]) if failures else ""), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), max_hold)
    except asyncio.TimeoutError:
        pass
    await asyncio.sleep(0.2)
    closed = sum(1 for r, _ in conns if r.at_eof())
    print("ALIVE %d closed %d" % (len(conns) - closed, closed), flush=True)
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.5)


def cmd_idle(argv):
    import argparse
    p = argparse.ArgumentParser(prog="relay_helper.py idle")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--max-hold", type=float, default=300)
    a = p.parse_args(argv)
    require_loopback(a.host)
    limit = raise_nofile()
    if limit < a.count + 64:
        sys.exit("relay_helper idle: RLIMIT_NOFILE %d too low for %d connections" % (limit, a.count))
    asyncio.run(idle_main(a.host, a.port, a.count, a.concurrency, a.timeout, a.max_hold))
    return 0


# -------------------------------------------------------------------- misc
def cmd_http(argv):
    url = argv[0]
    host = urllib.request.urlparse(url).hostname
    require_loopback(host)
    with urllib.request.urlopen(url, timeout=10) as r:
        sys.stdout.write(r.read().decode("utf-8", "replace"))
    return 0


def proc_cpu(pid):
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    ut, st, cut, cst = (int(fields[i]) for i in (11, 12, 13, 14))
    return (ut + st) / CLK, (cut + cst) / CLK


def cmd_cpu(argv):
    total = 0.0
    for pid in argv:
        try:
            own, children = proc_cpu(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += own + children
    print("%.2f" % total)
    return 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, argv = sys.argv[1], sys.argv[2:]
    fn = {"run": cmd_run, "waitsink": cmd_waitsink, "latency": cmd_latency,
          "idle": cmd_idle, "http": cmd_http, "cpu": cmd_cpu}.get(cmd)
    if fn is None:
        sys.exit(__doc__)
    sys.exit(fn(argv))


if __name__ == "__main__":
    main()
