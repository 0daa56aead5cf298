#!/usr/bin/python3
"""Crash-safety test for sealpost: kill -9 under load, prove nothing acked is lost.

What it does
  1. Starts tests/support/sink.py as the next hop (it keeps running throughout)
     and sealpost with a fresh data_dir, loopback ports only.
  2. --sessions sender threads push --messages messages through sealpost with
     smtplib, several messages per SMTP session. Every message carries a unique
     marker (header "X-Crash-Test-Id: <uuid>", repeated in the body). A message
     counts as acknowledged only when the final reply to its DATA was 250; the
     queue id from "queued as <ID>" is kept. Anything else (4xx/5xx, timeout,
     connection reset or refused) leaves it unacknowledged and it is sent again
     later as a new transaction.
  3. A killer thread kill -9s sealpost --kills times at seeded random moments
     (spread over the sending phase by acknowledged-count thresholds plus a
     random delay), waits a random short time and restarts it on the same
     ports and data_dir (bounded wait for /health and the SMTP banner).
  4. Afterwards it waits (bounded) until the sink holds every acknowledged
     message and /health reports queue.queued == 0.
  5. Verdict: every acknowledged queue id and every acknowledged marker must be
     in the sink at least once, and every delivered copy must be the exact
     bytes that were sent (sealpost prepends only its Received: header).
     Duplicates are allowed, counted and reported. On a loss the missing ids
     are listed together with what sealpost's database says about them.

Exit status 0 only when nothing was lost or damaged and the harness itself
worked (all kills done, every message eventually acknowledged, sealpost always
restarted). The last line is "crash-test: 1 passed, 0 failed" or
"crash-test: 0 passed, 1 failed".

Only the Python standard library is used; the sink needs Debian's
python3-aiosmtpd (scripts/install-test-tools.sh). The sealpost binary is
$SEALPOST_BIN, else ${CARGO_TARGET_DIR:-<repo>/target}/debug/sealpost
(scripts/crash-test.sh builds it first).
"""

import argparse
import base64
import collections
import http.client
import json
import os
import queue
import random
import re
import select
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SINK = REPO / "tests" / "support" / "sink.py"
SYSTEM_PYTHON = "/usr/bin/python3"

HOST = "127.0.0.1"
MARKER = "X-Crash-Test-Id"
SENDER = "crash-sender@crash-src.test"
HELO = "crash-client.test"

QUEUED_RE = re.compile(r"queued as (\S+)")
MARKER_RE = re.compile(rb"^X-Crash-Test-Id: ([0-9a-f-]{36})\r$", re.M)
RECEIVED_ID_RE = re.compile(rb"\(sealpost\) with \S+ id (\S+?)[;\r]")
SINK_JSON_RE = re.compile(r"^(\d{6,})\.json$")

T0 = time.monotonic()


def log(msg):
    print("crash-test: [%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


class Abort(Exception):
    """The harness cannot go on (not a sealpost verdict by itself)."""


# --------------------------------------------------------------------- ports

def ephemeral_range():
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return None


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_ports(count):
    """Free loopback ports that stay usable across restarts.

    sealpost is restarted on the same ports while our senders keep opening
    connections. A port from the kernel's ephemeral range (what binding port 0
    hands out) could meanwhile be taken as the *source* port of one of those
    outgoing connections, and the restart would fail with EADDRINUSE. So pick
    ports just below the ephemeral range, checked by binding them, and fall
    back to binding port 0 when that range is unknown or too small."""
    chosen = []
    rng = random.Random()  # ports do not affect the outcome; not seeded
    rnge = ephemeral_range()
    if rnge and rnge[0] > 12000:
        lo, hi = max(10000, rnge[0] - 20000), rnge[0] - 1
        for _ in range(500):
            if len(chosen) == count:
                break
            p = rng.randint(lo, hi)
            if p not in chosen and port_is_free(p):
                chosen.append(p)
    while len(chosen) < count:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOST, 0))
        p = s.getsockname()[1]
        s.close()
        if p not in chosen:
            chosen.append(p)
    return chosen


# ---------------------------------------------------------------- processes

def clean_env():
    """Our environment without anything that would override sealpost's
    configuration (SEALPOST_<SECTION>_<KEY>, RUST_LOG) or send it elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SEALPOST_") and k != "RUST_LOG"
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["RUST_BACKTRACE"] = "1"
    env["NO_COLOR"] = "1"
    return env


def log_tail(path, lines=25):
    try:
        data = Path(path).read_bytes()[-16384:]
    except OSError:
        return "(no log)"
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join("    | " + line for line in text)


def stop_process(proc, name, term_timeout=10.0):
    """SIGTERM, then SIGKILL; returns the exit status (None if unknown)."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=term_timeout)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) ignored SIGTERM for %.0fs; SIGKILL" % (name, proc.pid, term_timeout))
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        except OSError:
            pass
    return proc.returncode


class Spawner:
    """Starts every child process from one thread that lives as long as the
    test, with `setpriv --pdeathsig KILL` when available: the kernel then
    kills sealpost and the sink even if this script is SIGKILLed (a parent
    death signal fires when the *thread* that forked the child ends, so the
    short-lived killer thread must not be that thread)."""

    def __init__(self):
        self.requests = queue.Queue()
        self.prefix = []
        setpriv = shutil.which("setpriv")
        if setpriv and subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            self.prefix = [setpriv, "--pdeathsig", "KILL", "--"]
        threading.Thread(target=self._serve, name="spawner", daemon=True).start()

    def _serve(self):
        while True:
            argv, kwargs, box, done = self.requests.get()
            try:
                box.append(subprocess.Popen(self.prefix + argv, **kwargs))
            except BaseException as e:  # handed to the caller
                box.append(e)
            done.set()

    def popen(self, argv, **kwargs):
        box, done = [], threading.Event()
        self.requests.put((argv, kwargs, box, done))
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]


SPAWNER = None


def popen(argv, **kwargs):
    global SPAWNER
    if SPAWNER is None:
        SPAWNER = Spawner()
    return SPAWNER.popen(argv, **kwargs)


class Sink:
    def __init__(self, directory, logdir):
        self.dir = directory
        self.log_path = logdir / "sink.log"
        self.proc = None
        self.port = None

    def start(self, timeout=20.0):
        if not SINK.exists():
            raise Abort("%s not found" % SINK)
        self.logf = open(self.log_path, "wb")
        self.proc = popen(
            [SYSTEM_PYTHON, str(SINK), "--listen", "%s:0" % HOST, "--dir", str(self.dir), "--quiet"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.logf, env=clean_env())
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise Abort("sink did not print READY within %.0fs (exit %s)\n%s"
                            % (timeout, self.proc.poll(), log_tail(self.log_path)))
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(fd, 256)
                if not chunk:
                    continue
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        m = re.fullmatch(r"READY (\d+)", line.strip())
        if not m:
            raise Abort("unexpected sink output %r" % line)
        self.port = int(m.group(1))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_process(self.proc, "sink", 10.0)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()


class Server:
    """One sealpost installation (config, data_dir, ports) and its current
    process. Every (re)start gets a log file of its own."""

    def __init__(self, binary, workdir, smtp_port, admin_port, sink_port):
        self.binary = binary
        self.data_dir = workdir / "data"
        self.logdir = workdir / "logs"
        self.smtp_port = smtp_port
        self.admin_port = admin_port
        self.config = workdir / "sealpost.toml"
        self.config.write_text(
            "# written by tests/crash/crash_test.py\n"
            "[server]\n"
            'hostname = "sealpost.crash.test"\n'
            'data_dir = "%s"\n'
            "\n[smtp]\n"
            'listen = ["%s:%d"]\n'
            'relay_networks = ["127.0.0.0/8"]\n'
            "\n[relay]\n"
            'next_hop = "%s:%d"\n'
            'retry_schedule = ["1s"]\n'
            'connect_timeout = "5s"\n'
            "\n[admin]\n"
            'listen = "%s:%d"\n'
            "\n[portal]\n"
            'listen = "%s:0"\n'
            "\n[log]\n"
            'level = "info"\n'
            % (self.data_dir, HOST, smtp_port, HOST, sink_port, HOST, admin_port, HOST))
        self.proc = None
        self.closed = False
        self.generation = 0
        self.logs = []
        self.lock = threading.Lock()
        self.unexpected_exits = []  # (generation, pid, returncode, log)
        self.start_failures = []    # (generation, returncode, log, reason)

    @property
    def db_path(self):
        return self.data_dir / "sealpost.db"

    def _spawn(self):
        self.generation += 1
        path = self.logdir / ("sealpost-%02d.log" % self.generation)
        self.logs.append(path)
        with open(path, "wb") as logf:
            self.proc = popen(
                [str(self.binary), "serve", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=clean_env(), cwd=str(self.data_dir.parent))
        return path

    def start(self, timeout=30.0, attempts=4):
        """Starts sealpost and waits until /health answers 200 and the SMTP
        port sends its 220 banner. Retries a failed start a few times (a port
        may be briefly unavailable); every failure is recorded."""
        with self.lock:
            for attempt in range(1, attempts + 1):
                if self.closed:
                    raise Abort("stopping; no restart")
                path = self._spawn()
                reason = self._wait_ready(timeout)
                if reason is None:
                    return self.proc.pid
                rc = self.proc.poll()
                if rc is None:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                    rc = self.proc.returncode
                self.start_failures.append((self.generation, rc, path, reason))
                log("sealpost start #%d (attempt %d) failed: %s (exit %s)\n%s"
                    % (self.generation, attempt, reason, rc, log_tail(path)))
                time.sleep(0.5 * attempt)
            raise Abort("sealpost did not come up after %d attempts; see %s"
                        % (attempts, self.logdir))

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        health_ok = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited during start-up"
            if not health_ok:
                status, body = self.health(timeout=1.0)
                health_ok = status == 200 and body.get("status") == "ok"
            if health_ok and smtp_banner_ok(self.smtp_port):
                return None
            time.sleep(0.05)
        return "not ready within %.0fs (health ok: %s)" % (timeout, health_ok)

    def check_alive(self, context):
        """Records (once per process) that sealpost exited without being killed."""
        proc = self.proc
        if self.closed:
            return True
        if proc is not None and proc.poll() is not None:
            if not any(g == self.generation for g, _, _, _ in self.unexpected_exits):
                self.unexpected_exits.append(
                    (self.generation, proc.pid, proc.returncode, self.logs[-1]))
                log("SEALPOST EXITED ON ITS OWN (%s): pid %d, status %s\n%s"
                    % (context, proc.pid, proc.returncode, log_tail(self.logs[-1])))
            return False
        return True

    def kill9(self):
        with self.lock:
            proc = self.proc
            if self.closed:
                raise Abort("stopping; no kill")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return proc.pid

    def health(self, timeout=2.0):
        """(HTTP status, parsed JSON) of GET /health, or (None, {})."""
        conn = http.client.HTTPConnection(HOST, self.admin_port, timeout=timeout)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            body = resp.read()
            try:
                return resp.status, json.loads(body)
            except ValueError:
                return resp.status, {}
        except (OSError, http.client.HTTPException):
            return None, {}
        finally:
            conn.close()

    def stop(self):
        self.closed = True  # the killer thread must not start another one
        with self.lock:
            return stop_process(self.proc, "sealpost", 35.0)


def smtp_banner_ok(port):
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as s:
            s.settimeout(2.0)
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = s.recv(512)
                if not chunk:
                    return False
                data += chunk
            ok = data.startswith(b"220")
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            return ok
    except OSError:
        return False


# ----------------------------------------------------------------- messages

def make_message(index, mid, rng, large_every):
    """The exact bytes sent for one message (CRLF line ends, ends in CRLF).

    Sizes vary; every large_every-th message is over 1 MiB so sealpost's
    spool-file path is crashed too. Some body lines start with '.' to
    exercise dot-stuffing on both hops."""
    if large_every and index % large_every == large_every // 2:
        nbytes = rng.randint(1100 * 1024, 1500 * 1024)
    elif rng.random() < 0.08:
        nbytes = rng.randint(8 * 1024, 96 * 1024)
    else:
        nbytes = rng.randint(150, 3000)
    raw = rng.randbytes(nbytes * 3 // 4 + 3)
    text = base64.b64encode(raw).decode()[:nbytes]
    lines = [text[i:i + 76] for i in range(0, len(text), 76)]
    for j in range(0, len(lines), 7):
        lines[j] = "." + lines[j]
    headers = [
        "From: Crash Sender <%s>" % SENDER,
        "To: <rcpt%d@crash-dst.test>" % (index % 13),
        "Subject: crash test message %d" % index,
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
        "Message-ID: <%s@crash-src.test>" % mid,
        "%s: %s" % (MARKER, mid),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    body = ["crash-test-id %s" % mid, "index %d" % index] + lines + [".", "..", "end %s" % mid]
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body) + "\r\n").encode("ascii")


def rcpt_of(index):
    return "rcpt%d@crash-dst.test" % (index % 13)


# --------------------------------------------------------------- book-keeping

class Book:
    """Shared state of the senders: pending work, attempts, acknowledgements."""

    def __init__(self, ids):
        self.lock = threading.Lock()
        self.total = len(ids)
        self.pending = collections.deque(ids)
        self.acked = {}                          # mid -> queue id (or None)
        self.attempts = collections.Counter()   # mid -> DATA transactions started
        self.sessions = 0
        self.connect_failures = 0
        self.session_errors = 0
        self.rejections = collections.Counter()  # "DATA 451", "MAIL 421", ...
        self.errors = collections.Counter()      # exception class names
        self.acked_without_qid = []
        self.harness_errors = []

    def take(self, n):
        with self.lock:
            out = []
            while self.pending and len(out) < n:
                out.append(self.pending.popleft())
            return out

    def put_back(self, mids):
        with self.lock:
            self.pending.extend(mids)

    def attempt(self, mid):
        with self.lock:
            self.attempts[mid] += 1

    def ack(self, mid, qid):
        with self.lock:
            if mid in self.acked:
                raise AssertionError("message %s acknowledged twice" % mid)
            self.acked[mid] = qid
            if qid is None:
                self.acked_without_qid.append(mid)

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def all_acked(self):
        with self.lock:
            return len(self.acked) == self.total

    def count(self, counter, key):
        with self.lock:
            getattr(self, counter)[key] += 1

    def bump(self, attr):
        with self.lock:
            setattr(self, attr, getattr(self, attr) + 1)


class SessionEnd(Exception):
    """The server ended the session (421) or it is unusable."""


def send_one(conn, mid, index, data, book):
    """One transaction. Returns the queue id when DATA got 250, else None.
    Raises SessionEnd/SMTPException/OSError when the session is unusable."""
    book.attempt(mid)
    code, resp = conn.mail(SENDER)
    if code != 250:
        book.count("rejections", "MAIL %d" % code)
        if code == 421:
            raise SessionEnd("MAIL %d" % code)
        conn.rset()
        return None
    code, resp = conn.rcpt(rcpt_of(index))
    if code not in (250, 251):
        book.count("rejections", "RCPT %d" % code)
        if code == 421:
            raise SessionEnd("RCPT %d" % code)
        conn.rset()
        return None
    try:
        code, resp = conn.data(data)
    except smtplib.SMTPDataError as e:  # DATA itself not answered 354
        book.count("rejections", "DATA-cmd %d" % e.smtp_code)
        if e.smtp_code == 421:
            raise SessionEnd("DATA %d" % e.smtp_code)
        conn.rset()
        return None
    if code == 250:
        m = QUEUED_RE.search(resp.decode("utf-8", "replace"))
        return m.group(1) if m else ""
    book.count("rejections", "DATA %d" % code)
    if code == 421:
        raise SessionEnd("DATA %d" % code)
    return None


def sender_thread(tid, args, server, book, messages, index_of, stop, deadline):
    try:
        sender_loop(tid, args, server, book, messages, index_of, stop, deadline)
    except Exception:  # a bug in the harness: make it fail the run
        with book.lock:
            book.harness_errors.append(traceback.format_exc())
        stop.set()


def sender_loop(tid, args, server, book, messages, index_of, stop, deadline):
    rng = random.Random("%s-sender-%d" % (args.seed, tid))
    backoff = 0.02
    while not stop.is_set() and time.monotonic() < deadline:
        batch = book.take(rng.randint(1, 2 * args.per_session - 1))
        if not batch:
            if book.all_acked():
                return
            time.sleep(0.05)  # others hold the rest; some may come back
            continue
        todo = list(batch)
        conn = None
        try:
            try:
                conn = smtplib.SMTP(HOST, server.smtp_port, local_hostname=HELO,
                                    timeout=args.io_timeout)
            except (OSError, smtplib.SMTPException) as e:
                book.bump("connect_failures")
                book.count("errors", "connect: " + type(e).__name__)
                time.sleep(backoff * (0.5 + rng.random()))
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.02
            book.bump("sessions")
            code, _ = conn.ehlo()
            if code != 250:
                raise SessionEnd("EHLO %d" % code)
            while todo and not stop.is_set():
                mid = todo[0]
                qid = send_one(conn, mid, index_of[mid], messages[mid], book)
                todo.pop(0)
                if qid is None:
                    book.put_back([mid])
                else:
                    book.ack(mid, qid or None)
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
        except (SessionEnd, smtplib.SMTPException, OSError) as e:
            book.bump("session_errors")
            book.count("errors", type(e).__name__)
            time.sleep(backoff * (0.5 + rng.random()))
        finally:
            if todo:
                book.put_back(todo)
            if conn is not None:
                try:
                    conn.close()
                except OSError:
                    pass


# ------------------------------------------------------------------- killer

class KillLog:
    def __init__(self):
        self.kills = []       # (n, pid, acked at kill, down seconds, restart seconds)
        self.killed_pids = set()
        self.error = None


def killer_thread(args, server, book, stop, deadline, klog):
    rng = random.Random("%s-killer" % args.seed)
    fractions = sorted(rng.uniform(0.04, 0.92) for _ in range(args.kills))
    plan = [(max(1, int(f * book.total)), rng.uniform(0.0, 0.3), rng.uniform(0.05, 1.2))
            for f in fractions]
    log("kill plan: " + ", ".join("after %d acks +%.0fms, down %.0fms" % (t, j * 1000, d * 1000)
                                 for t, j, d in plan))
    try:
        for n, (threshold, jitter, down) in enumerate(plan, 1):
            while book.acked_count() < threshold:
                if stop.is_set() or time.monotonic() > deadline:
                    return
                server.check_alive("while sending")
                time.sleep(0.01)
            if stop.wait(jitter):
                return
            server.check_alive("before kill #%d" % n)
            at = book.acked_count()
            pid = server.kill9()
            klog.killed_pids.add(pid)
            t_kill = time.monotonic()
            if stop.wait(down):
                return
            new_pid = server.start(timeout=args.start_timeout)
            klog.kills.append((n, pid, at, down, time.monotonic() - t_kill))
            log("kill #%d: SIGKILL pid %d at %d/%d acked; down %.2fs; restarted as pid %d (%.2fs)"
                % (n, pid, at, book.total, down, new_pid, time.monotonic() - t_kill - down))
    except Abort as e:
        klog.error = str(e)
        stop.set()
    except Exception:  # a bug in the harness: stop the run loudly
        klog.error = traceback.format_exc()
        stop.set()


# --------------------------------------------------------------- sink reader

class SinkReader:
    """Reads the sink's directory incrementally."""

    def __init__(self, directory, messages):
        self.dir = directory
        self.messages = messages
        self.seen = set()
        self.copies = collections.defaultdict(list)   # mid -> [(seq, qid)]
        self.by_qid = collections.defaultdict(list)   # qid -> [seq]
        self.damaged = []                             # (seq, mid, qid, reason)
        self.foreign = []                             # (seq, summary)

    def scan(self):
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in sorted(names):
            m = SINK_JSON_RE.match(name)
            if not m or name in self.seen:
                continue
            seq = m.group(1)
            try:
                raw = (self.dir / (seq + ".eml")).read_bytes()
            except OSError:
                continue  # cannot happen per sink contract; retry next scan
            self.seen.add(name)
            self.examine(seq, raw)

    def examine(self, seq, raw):
        qm = RECEIVED_ID_RE.search(raw[:2048])
        qid = qm.group(1).decode() if qm else None
        mm = MARKER_RE.search(raw[:8192])
        mid = mm.group(1).decode() if mm else None
        if mid is None or mid not in self.messages:
            first = raw[:200].decode("ascii", "replace").replace("\r\n", " | ")
            self.foreign.append((seq, first))
            return
        self.copies[mid].append((seq, qid))
        if qid:
            self.by_qid[qid].append(seq)
        reason = check_intact(raw, self.messages[mid])
        if reason:
            self.damaged.append((seq, mid, qid, reason))


def check_intact(raw, sent):
    """sealpost may only prepend its own Received: field to what we sent."""
    if not raw.startswith(b"Received: "):
        return "does not start with sealpost's Received: field"
    end = raw.index(b"\r\n") + 2 if b"\r\n" in raw else len(raw)
    while raw[end:end + 1] in (b" ", b"\t"):
        nxt = raw.find(b"\r\n", end)
        if nxt < 0:
            return "unterminated Received: field"
        end = nxt + 2
    if b"(sealpost)" not in raw[:end]:
        return "first Received: field is not sealpost's"
    rest = raw[end:]
    if rest == sent:
        return None
    if len(rest) != len(sent):
        return "content differs: %d bytes delivered, %d sent" % (len(rest), len(sent))
    diff = next(i for i in range(len(sent)) if rest[i] != sent[i])
    return "content differs at byte %d of %d" % (diff, len(sent))


# ------------------------------------------------------------------- forensics

def open_db(db_path, write=False):
    mode = "rw" if write else "ro"
    return sqlite3.connect("file:%s?mode=%s" % (db_path, mode), uri=True, timeout=30)


def owner_pid(owner):
    """Worker owners are "<hostname>:<pid>:<id>"."""
    parts = (owner or "").split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def describe_in_store(db_path, qids, killed_pids):
    """What sealpost's database says about the given queue ids (read-only):
    qid -> (class, text). Classes: "not-in-store", "dead-lease" (queued but
    leased by a process this test killed), "queued", "delivered", "failed",
    "held", "unknown"."""
    out = {}
    if not qids:
        return out
    now_ms = int(time.time() * 1000)
    try:
        con = open_db(db_path)
    except sqlite3.Error as e:
        return {q: ("unknown", "cannot open %s: %s" % (db_path, e)) for q in qids}
    try:
        for q in qids:
            msg = con.execute(
                "SELECT received_at, size, kind, spooled, has_content FROM messages WHERE id = ?",
                (q,)).fetchone()
            if msg is None:
                out[q] = ("not-in-store", "no messages row for this acknowledged queue id")
                continue
            parts = ["size=%d spooled=%d has_content=%d" % (msg[1], msg[3], msg[4])]
            cls = "unknown"
            for st, att, owner, until, nxt, reply in con.execute(
                    "SELECT status, attempts, lease_owner, lease_until, next_attempt_at, last_reply "
                    "FROM recipients WHERE message_id = ? ORDER BY idx", (q,)):
                desc = "recipient status=%s attempts=%d last_reply=%r" % (st, att, reply)
                cls = st
                if st == "queued" and owner and until > now_ms:
                    pid = owner_pid(owner)
                    killed = pid in killed_pids
                    if killed:
                        cls = "dead-lease"
                    desc += (" lease_owner=%s (pid %s, %s) lease ends in %.0fs"
                             % (owner, pid, "KILLED by this test" if killed else "current",
                                (until - now_ms) / 1000))
                elif st == "queued":
                    desc += " next attempt in %.1fs" % ((nxt - now_ms) / 1000)
                parts.append(desc)
            out[q] = (cls, "; ".join(parts))
    except sqlite3.Error as e:
        for q in qids:
            out.setdefault(q, ("unknown", "database error: %s" % e))
    finally:
        con.close()
    return out


def expire_killed_leases(db_path, killed_pids):
    """--expire-killed-leases: end the leases held by processes this test
    killed, as if their lease_duration (30 min) had passed. Returns the count."""
    if not killed_pids:
        return 0
    con = open_db(db_path, write=True)
    try:
        rows = con.execute(
            "SELECT message_id, idx, lease_owner FROM recipients "
            "WHERE status = 'queued' AND lease_owner IS NOT NULL"
        ).fetchall()
        ids = [(m, i) for m, i, owner in rows if owner_pid(owner) in killed_pids]
        with con:
            con.executemany("UPDATE recipients SET lease_until = 0, lease_owner = NULL "
                            "WHERE message_id = ? AND idx = ? AND status = 'queued'", ids)
        return len(ids)
    finally:
        con.close()


def lease_summary(db_path, killed_pids):
    """Queued recipients grouped by lease owner."""
    try:
        con = open_db(db_path)
        try:
            rows = con.execute(
                "SELECT lease_owner, COUNT(*), MAX(lease_until) FROM recipients "
                "WHERE status = 'queued' GROUP BY lease_owner").fetchall()
        finally:
            con.close()
    except sqlite3.Error as e:
        return ["cannot read %s: %s" % (db_path, e)]
    now_ms = int(time.time() * 1000)
    lines = []
    for owner, n, until in rows:
        if owner is None or until <= now_ms:
            lines.append("%d queued, not leased" % n)
            continue
        pid = owner_pid(owner)
        lines.append("%d queued, leased by %s (pid %s, %s) for another %.0fs"
                     % (n, owner, pid, "KILLED by this test" if pid in killed_pids else "current",
                        (until - now_ms) / 1000))
    return lines


def panics_in(paths):
    found = []
    for p in paths:
        try:
            text = Path(p).read_text("utf-8", "replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "panicked at" in line:
                found.append("%s: %s" % (Path(p).name, line.strip()))
    return found


# --------------------------------------------------------------------- main

def default_binary():
    env = os.environ.get("SEALPOST_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else REPO / "target"
    if not base.is_absolute():
        base = REPO / base
    return base / "debug" / "sealpost"


def parse_args(argv):
    p = argparse.ArgumentParser(description="kill -9 sealpost under load; prove no acknowledged message is lost")
    p.add_argument("--messages", type=int, default=3000, help="distinct messages to get acknowledged (3000)")
    p.add_argument("--sessions", type=int, default=16, help="concurrent sender threads (16)")
    p.add_argument("--kills", type=int, default=5, help="kill -9s during the sending phase (5)")
    p.add_argument("--seed", type=int, default=None, help="seed of every random choice (default: random, printed)")
    p.add_argument("--per-session", type=int, default=8,
                   help="mean messages per SMTP session (8; each session takes 1..2N-1)")
    p.add_argument("--large-every", type=int, default=300,
                   help="every Nth message is >1MiB (spooled by sealpost); 0 = none (300)")
    p.add_argument("--send-timeout", type=float, default=90.0, help="bound of the sending phase, s (90)")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="bound of the wait for delivery after sending, s (120)")
    p.add_argument("--start-timeout", type=float, default=30.0, help="bound of one sealpost start, s (30)")
    p.add_argument("--io-timeout", type=float, default=15.0, help="SMTP client socket timeout, s (15)")
    p.add_argument("--bin", type=Path, default=None,
                   help="sealpost binary (default $SEALPOST_BIN or ${CARGO_TARGET_DIR:-target}/debug/sealpost)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory on success too")
    p.add_argument("--expire-killed-leases", action="store_true",
                   help="before draining, end the queue leases held by the killed processes in "
                        "sealpost's database, simulating that their 30-minute lease_duration has "
                        "passed (sealpost does not reclaim them on restart)")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(4), "big")
    for name in ("messages", "sessions", "per_session"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    if a.kills < 0:
        p.error("--kills must be >= 0")
    if a.bin is None:
        a.bin = default_binary()
    return a


def run(args, workdir, procs):
    """The test proper. Returns (failures, report lines)."""
    failures = []
    binary = args.bin.resolve()
    if not os.access(binary, os.X_OK):
        raise Abort("sealpost binary %s is missing (run scripts/crash-test.sh or cargo build -p sealpost)" % binary)
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise Abort("%s is missing" % SYSTEM_PYTHON)
    (workdir / "logs").mkdir()
    (workdir / "sink").mkdir()

    # Messages first (deterministic for a seed), then the processes.
    rng = random.Random("%s-messages" % args.seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(args.messages)]
    if len(set(ids)) != len(ids):
        raise Abort("duplicate generated ids (impossible)")
    messages = {mid: make_message(i, mid, rng, args.large_every) for i, mid in enumerate(ids)}
    index_of = {mid: i for i, mid in enumerate(ids)}
    log("%d messages, %.1f MiB in all, %d over 1 MiB"
        % (len(ids), sum(map(len, messages.values())) / 2**20,
           sum(1 for m in messages.values() if len(m) > 2**20)))

    sink = Sink(workdir / "sink", workdir / "logs")
    procs.append(sink)
    sink.start()
    smtp_port, admin_port = pick_ports(2)
    server = Server(binary, workdir, smtp_port, admin_port, sink.port)
    procs.append(server)
    log("sink on %s:%d; sealpost SMTP %s:%d, admin %s:%d; binary %s"
        % (HOST, sink.port, HOST, smtp_port, HOST, admin_port, binary))
    pid = server.start(timeout=args.start_timeout)
    log("sealpost up (pid %d)" % pid)

    # ---- sending phase, with the killer
    book = Book(ids)
    stop = threading.Event()
    t_send = time.monotonic()
    send_deadline = t_send + args.send_timeout
    klog = KillLog()
    threads = [threading.Thread(target=sender_thread, name="sender-%d" % i, daemon=True,
                                args=(i, args, server, book, messages, index_of, stop, send_deadline))
               for i in range(args.sessions)]
    killer = threading.Thread(target=killer_thread, name="killer", daemon=True,
                              args=(args, server, book, stop, send_deadline, klog))
    for t in threads:
        t.start()
    killer.start()
    last = 0.0
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        if time.monotonic() - last > 5:
            last = time.monotonic()
            log("sending: %d/%d acknowledged, %d sessions, %d kills"
                % (book.acked_count(), book.total, book.sessions, len(klog.kills)))
        if time.monotonic() > send_deadline + args.io_timeout + 5:
            break
    stop.set()
    for t in threads:
        t.join(timeout=args.io_timeout + 5)
    killer.join(timeout=args.start_timeout * 5 + 10)
    send_secs = time.monotonic() - t_send
    if klog.error:
        failures.append("killer/restart failed: %s" % klog.error)
    for e in book.harness_errors:
        failures.append("sender thread failed:\n%s" % e)
    if any(t.is_alive() for t in threads) or killer.is_alive():
        failures.append("a sender or killer thread did not finish in time")
    log("sending done in %.1fs: %d/%d acknowledged after %d transactions in %d sessions; %d kills"
        % (send_secs, book.acked_count(), book.total, sum(book.attempts.values()),
           book.sessions, len(klog.kills)))

    # ---- make sure it is running, then drain
    server.check_alive("after sending")
    if server.proc is None or server.proc.poll() is not None:
        log("sealpost is not running after the sending phase; starting it for the drain")
        server.start(timeout=args.start_timeout)
    reader = SinkReader(workdir / "sink", messages)
    acked = dict(book.acked)
    acked_qids = {q for q in acked.values() if q}
    killed = set(klog.killed_pids)
    t_drain = time.monotonic()
    if args.expire_killed_leases:
        n = expire_killed_leases(server.db_path, killed)
        log("--expire-killed-leases: ended %d lease(s) held by killed processes" % n)
        report_expired = n
    else:
        report_expired = None
    drain_deadline = t_drain + args.drain_timeout
    last = 0.0
    last_progress = (time.monotonic(), -1)
    queued = None
    hopeless = False
    while True:
        reader.scan()
        missing_ids = [m for m in acked if m not in reader.copies]
        missing_qids = [q for q in acked_qids if q not in reader.by_qid]
        status, body = server.health()
        queued = (body.get("queue") or {}).get("queued") if status == 200 else None
        if not missing_ids and not missing_qids and queued == 0:
            break
        now = time.monotonic()
        if now > drain_deadline:
            break
        if len(missing_qids) != last_progress[1]:
            last_progress = (now, len(missing_qids))
        elif missing_qids and now - last_progress[0] > 10:
            # No progress for 10s: if every missing one is in a state that
            # cannot change before the drain bound (leased by a killed process
            # for 30 min; or final: delivered/failed/absent in the store - the
            # sink has written a message before it answers 250, so "delivered"
            # in the store means the sink had its chance), stop waiting.
            last_progress = (now, len(missing_qids))
            store = describe_in_store(server.db_path, missing_qids, killed)
            classes = collections.Counter(c for c, _ in store.values())
            if set(classes) <= {"dead-lease", "delivered", "failed", "not-in-store"}:
                log("draining: the %d missing acknowledged messages cannot arrive before the "
                    "drain bound (%s); not waiting"
                    % (len(missing_qids), ", ".join("%s x%d" % kv for kv in sorted(classes.items()))))
                hopeless = True
                break
        if now - last > 5:
            last = now
            log("draining: %d/%d acknowledged delivered, queue.queued=%s"
                % (len(acked) - len(missing_ids), len(acked), queued))
            server.check_alive("while draining")
        time.sleep(0.25)
    time.sleep(0.5)  # last-moment duplicates
    reader.scan()
    drain_secs = time.monotonic() - t_drain
    server.check_alive("after draining")
    missing_ids = sorted(m for m in acked if m not in reader.copies)
    missing_qids = sorted(q for q in acked_qids if q not in reader.by_qid)
    log("drain finished in %.1fs: queue.queued=%s" % (drain_secs, queued))

    # ---- verdict
    report = []
    dup_ids = {m: c for m, c in reader.copies.items() if len(c) > 1}
    copies_total = sum(len(c) for c in reader.copies.values())
    # Extra copies of one queue id: sealpost delivered it again after a kill
    # (delivered, but the outcome was not recorded yet). Copies with another
    # queue id than the acknowledged one: a transaction whose 250 was lost in
    # a kill was committed anyway, and the message was sent again.
    redelivered = sum(1 for qs in reader.by_qid.values() if len(qs) > 1)
    from_unacked = [(m, seq, q) for m, c in reader.copies.items() for seq, q in c
                    if q != acked.get(m)]
    unacked_delivered = sorted(m for m in reader.copies if m not in acked)
    report += [
        "seed                          %d" % args.seed,
        "messages / sessions / kills   %d / %d / %d requested" % (args.messages, args.sessions, args.kills),
        "kills done                    %d" % len(klog.kills),
        "sealpost starts               %d (failed starts: %d)" % (server.generation, len(server.start_failures)),
        "SMTP sessions                 %d (connect failures %d, broken sessions %d)"
        % (book.sessions, book.connect_failures, book.session_errors),
        "sent attempts (transactions)  %d" % sum(book.attempts.values()),
        "acknowledged (250)            %d of %d" % (len(acked), book.total),
        "delivered unique (marker)     %d" % len(reader.copies),
        "delivered copies in sink      %d (+%d foreign)" % (copies_total, len(reader.foreign)),
        "duplicates                    %d ids delivered more than once (%d extra copies); "
        "%d queue ids delivered more than once (redelivery after a kill); "
        "%d copies from unacknowledged transactions"
        % (len(dup_ids), copies_total - len(reader.copies), redelivered, len(from_unacked)),
        "unacknowledged but delivered  %d transactions (allowed: committed, but the 250 was lost "
        "in a kill)%s" % (len({q for _, _, q in from_unacked}),
                          "; %d ids never acknowledged" % len(unacked_delivered) if unacked_delivered else ""),
        "missing acknowledged          %d ids, %d queue ids" % (len(missing_ids), len(missing_qids)),
        "damaged copies                %d" % len(reader.damaged),
        "timings                       sending %.1fs, drain %.1fs" % (send_secs, drain_secs),
    ]
    if report_expired is not None:
        report.append("SIMULATED lease expiry        %d leases of killed processes ended by the test "
                      "(--expire-killed-leases)" % report_expired)
    if book.rejections:
        report.append("non-250 replies               " + ", ".join(
            "%s x%d" % kv for kv in sorted(book.rejections.items())))
    if book.errors:
        report.append("client-side errors            " + ", ".join(
            "%s x%d" % kv for kv in sorted(book.errors.items())))

    if missing_ids or missing_qids:
        wanted = sorted(set(missing_qids) | {acked[m] for m in missing_ids if acked[m]})
        store = describe_in_store(server.db_path, wanted, killed)
        classes = collections.Counter(c for c, _ in store.values())
        lost = [q for q in wanted if store[q][0] != "dead-lease"]
        delayed = [q for q in wanted if store[q][0] == "dead-lease"]
        if lost:
            failures.append("LOSS: %d acknowledged message(s) not in the sink and not recoverable "
                            "by the queue as far as the store shows (%s)"
                            % (len(lost), ", ".join("%s x%d" % kv for kv in sorted(classes.items())
                                                    if kv[0] != "dead-lease")))
        if delayed:
            failures.append(
                "NOT DELIVERED: %d acknowledged message(s) are stuck in the queue, leased by "
                "sealpost processes this test killed; a restarted sealpost does not take over "
                "those leases, so they wait for the lease to expire (QueueConfig::lease_duration, "
                "30 min) - far beyond the %.0fs drain bound%s"
                % (len(delayed), args.drain_timeout,
                   " (the drain stopped early: nothing else could arrive)" if hopeless else "")
            + ". Not a loss as far as the store shows; --expire-killed-leases simulates the "
              "expiry to check the rest.")
        qid_to_mid = {q: m for m, q in acked.items()}
        report.append("MISSING (marker -> acknowledged queue id: class: what the store says):")
        shown = lost[:40] + delayed[:10]
        for q in shown:
            m = qid_to_mid.get(q)
            others = reader.copies.get(m, [])
            report.append("  %s -> %s: %s: %s%s" % (
                m, q, store[q][0], store[q][1],
                ("; marker delivered only via other queue ids %s" % others) if others else ""))
        if len(wanted) > len(shown):
            report.append("  ... %d more in %s" % (len(wanted) - len(shown), workdir / "report.json"))
        report.append("queued recipients by lease: " + ("; ".join(lease_summary(server.db_path, killed))
                                                          or "none"))
        (workdir / "report.json").write_text(json.dumps(
            {"seed": args.seed,
             "missing": {q: {"marker": qid_to_mid.get(q), "class": store[q][0], "store": store[q][1]}
                         for q in wanted}}, indent=1))
    if reader.damaged:
        failures.append("DAMAGED: %d delivered copies differ from what was sent" % len(reader.damaged))
        report.append("DAMAGED (sink file, marker, queue id: problem):")
        for seq, mid, qid, reason in reader.damaged[:20]:
            report.append("  sink %s (%s, queue id %s): %s" % (seq, mid, qid, reason))
    if reader.foreign:
        report.append("foreign messages in the sink (e.g. bounces): %d" % len(reader.foreign))
        for seq, first in reader.foreign[:5]:
            report.append("  sink %s: %s" % (seq, first))
    if book.acked_without_qid:
        failures.append("%d 250 replies without 'queued as <ID>'" % len(book.acked_without_qid))
    if len(acked) < book.total:
        failures.append("only %d of %d messages were ever acknowledged within %.0fs"
                        % (len(acked), book.total, args.send_timeout))
    if len(klog.kills) < args.kills:
        failures.append("only %d of %d kills were done" % (len(klog.kills), args.kills))
    if queued != 0:
        report.append("WARNING: queue.queued=%s when the drain ended (bound %.0fs)%s"
                      % (queued, args.drain_timeout, "" if (missing_ids or missing_qids) else
                         "; " + "; ".join(lease_summary(server.db_path, killed))))
    for gen, pid, rc, path in server.unexpected_exits:
        failures.append("CRASH: sealpost #%d (pid %d) exited on its own with status %s; log %s"
                        % (gen, pid, rc, path))
    for gen, rc, path, reason in server.start_failures:
        report.append("WARNING: sealpost start #%d failed (%s, exit %s); log %s" % (gen, reason, rc, path))
    panics = panics_in(server.logs)
    if panics:
        failures.append("PANIC in sealpost's log: %d line(s)" % len(panics))
        report += ["  " + p for p in panics[:10]]

    rc = server.stop()
    if rc not in (0, None):
        report.append("WARNING: sealpost exited with status %s on SIGTERM at the end" % rc)
    return failures, report


def main(argv):
    args = parse_args(argv)
    log("seed %d (rerun with --seed %d); %d messages, %d sessions, %d kills"
        % (args.seed, args.seed, args.messages, args.sessions, args.kills))
    workdir = Path(tempfile.mkdtemp(prefix="sealpost-crash-"))
    procs = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    failures, report = [], []
    try:
        failures, report = run(args, workdir, procs)
    except Abort as e:
        failures = ["harness: %s" % e]
    except KeyboardInterrupt as e:
        failures = ["interrupted (%s)" % (str(e) or "ctrl-c")]
    except Exception:
        failures = ["harness error:\n" + traceback.format_exc()]
    finally:
        for p in reversed(procs):
            try:
                p.stop()
            except Exception as e:  # keep cleaning up
                print("crash-test: cleanup of %s failed: %s" % (type(p).__name__, e), file=sys.stderr)

    for line in report:
        print("crash-test:   " + line)
    if failures:
        for f in failures:
            print("crash-test: FAIL: " + f)
        print("crash-test: kept %s (logs/, sink/, data/sealpost.db) - seed %d" % (workdir, args.seed))
        print("crash-test: 0 passed, 1 failed", flush=True)
        return 1
    if args.keep:
        print("crash-test: kept %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("crash-test: 1 passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
