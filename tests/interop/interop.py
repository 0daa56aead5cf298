#!/usr/bin/python3
"""Helpers for tests/interop/run.sh (sealpost <-> Debian Postfix).

Every subcommand is one step or one assertion. It exits 0 on success and 1 on
failure, printing what it saw so that a failed CI run explains itself.
Only the Python standard library is used; run it with /usr/bin/python3.

  free-port                                   print an unused 127.0.0.1 TCP port
  wait-line FILE REGEX TIMEOUT [PID]          wait until FILE has a line matching
                                              REGEX; print group 1 (or the line);
                                              give up early if PID has exited
  make-message --kind K --out EML [--wire W]  write a test message (CRLF); --wire
               --from A --to A,B --msgid ID    also writes the dot-stuffed DATA
               --subject S                     form that swaks --no-data-fixup sends
  send-smtp    --server H:P --file EML ...    send one message with smtplib
  xforward-direct --server H:P --source IP    XFORWARD from a client that is not
                                              in xforward_hosts: must get 550 5.7.0
  wait-rcpts   --sink DIR --rcpt A ... --timeout T
  check-delivery --sink DIR --sent EML ...    the sink got the message, intact
  maillog      --log FILE --rcpt A --relay R  Postfix logged status=sent via R
  db-client-ip --db FILE --sender A --expect IP
  db-no-ip     --db FILE --ip IP
  wait-health  --url URL --timeout T          GET /health until queue.queued == 0
"""

import argparse
import email.utils
import glob
import json
import os
import re
import smtplib
import socket
import sqlite3
import sys
import time
import urllib.request

CRLF = b"\r\n"


def say(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------- ports, waiting


def cmd_free_port(_args):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        say(s.getsockname()[1])
    return 0


def cmd_wait_line(args):
    rx = re.compile(args.regex)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        alive = args.pid is None or os.path.exists("/proc/%d" % args.pid)
        try:
            with open(args.file, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = rx.search(line)
                    if m:
                        say(m.group(1) if m.groups() else line.rstrip("\n"))
                        return 0
        except FileNotFoundError:
            pass
        if not alive:
            print("wait-line: process %d exited before writing a line matching %r to %s" % (
                args.pid, args.regex, args.file), file=sys.stderr)
            return 1
        time.sleep(0.1)
    print("wait-line: no line matching %r in %s after %ss" % (args.regex, args.file, args.timeout),
          file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- messages


def headers_for(args, extra):
    h = [
        "From: Interop Sender <%s>" % args.sender,
        "To: %s" % ", ".join(args.to.split(",")),
        "Subject: %s" % args.subject,
        "Date: %s" % email.utils.formatdate(localtime=False),
        "Message-ID: <%s>" % args.msgid,
        "MIME-Version: 1.0",
        "X-Interop-Folded: a header folded over\r\n\tseveral lines, which must survive\r\n  unchanged",
    ]
    return h + extra


def body_plain():
    return [
        "Hello from the sealpost interop test.",
        "",
        ".A line that starts with a dot (dot-stuffed on the wire).",
        "..Two dots.",
        ".",
        "Trailing spaces   ",
        "Tab\tinside\tthe line",
        "From the start of a line (no mbox quoting please)",
        "",
        "-- ",
        "last line",
    ]


def body_utf8():
    return [
        "Grüße aus Köln – 8-bit UTF-8 body, sent with BODY=8BITMIME.",
        "Ελληνικά, русский, 日本語, עברית, emoji 📬✉️",
        ".Ünïcödé line that starts with a dot",
        "Zeile mit ß und €",
        "",
        "Ende.",
    ]


def body_big(target):
    lines, size, n = [], 0, 0
    while size < target:
        n += 1
        if n % 997 == 0:
            line = ".dot-led line %07d" % n
        else:
            line = ("line %07d " % n) + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: 60]
        lines.append(line)
        size += len(line) + 2
    return lines


def cmd_make_message(args):
    if args.kind in ("plain", "multi"):
        extra = ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
        body = body_plain()
    elif args.kind == "utf8":
        extra = ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        body = body_utf8()
    elif args.kind == "big":
        extra = ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
        body = body_big(args.size)
    else:
        raise SystemExit("unknown kind %r" % args.kind)
    text = "\r\n".join(headers_for(args, extra)) + "\r\n\r\n" + "\r\n".join(body) + "\r\n"
    raw = text.encode("utf-8")
    with open(args.out, "wb") as f:
        f.write(raw)
    if args.wire:
        # What swaks --no-data-fixup must send: dot-stuffed, ending in ".";
        # swaks appends the CRLF after the final "." itself.
        stuffed = re.sub(rb"(?m)^\.", b"..", raw)
        with open(args.wire, "wb") as f:
            f.write(stuffed + b".")
    say("%s: %d octets" % (args.out, len(raw)))
    return 0


# --------------------------------------------------------------------------- SMTP clients


def hostport(v):
    host, _, port = v.rpartition(":")
    return host, int(port)


def cmd_send_smtp(args):
    host, port = hostport(args.server)
    with open(args.file, "rb") as f:
        raw = f.read()
    rcpts = args.rcpt.split(",")
    src = (args.source, 0) if args.source else None
    try:
        s = smtplib.SMTP(host, port, local_hostname=args.helo, timeout=args.timeout,
                         source_address=src)
    except OSError as e:
        say("send-smtp: cannot connect to %s: %s" % (args.server, e))
        return 1
    try:
        code, msg = s.ehlo()
        say("EHLO -> %d %s" % (code, msg.decode(errors="replace").replace("\n", " | ")))
        for opt in args.mail_option:
            kw = opt.split("=")[0].lower()
            if kw == "body" and not s.has_extn("8bitmime"):
                say("send-smtp: server does not advertise 8BITMIME")
                return 1
        code, msg = s.mail(args.sender, args.mail_option)
        say("MAIL FROM:<%s> %s -> %d %s" % (args.sender, " ".join(args.mail_option), code, msg.decode()))
        if code != 250:
            return 1
        for r in rcpts:
            code, msg = s.rcpt(r)
            say("RCPT TO:<%s> -> %d %s" % (r, code, msg.decode()))
            if code not in (250, 251):
                return 1
        code, msg = s.data(raw)
        say("DATA (%d octets) -> %d %s" % (len(raw), code, msg.decode(errors="replace")))
        if code != 250:
            return 1
        s.quit()
    except (smtplib.SMTPException, OSError) as e:
        say("send-smtp: %s: %r" % (args.server, e))
        return 1
    return 0


def cmd_xforward_direct(args):
    """A client outside xforward_hosts tries XFORWARD. Exit 0 iff the EHLO
    reply does not offer XFORWARD and XFORWARD gets 550 5.7.0. Then (for
    the report) the client carries on with a normal transaction."""
    host, port = hostport(args.server)
    ok = True
    try:
        s = smtplib.SMTP(host, port, local_hostname=args.helo, timeout=args.timeout,
                         source_address=(args.source, 0))
        code, msg = s.ehlo()
        text = msg.decode(errors="replace")
        say("EHLO from %s -> %d %s" % (args.source, code, text.replace("\n", " | ")))
        if s.has_extn("xforward"):
            say("FAIL: XFORWARD advertised to %s, which is not in xforward_hosts" % args.source)
            ok = False
        cmd = "ADDR=%s NAME=forged.example HELO=forged.example PROTO=ESMTP" % args.forged
        code, msg = s.docmd("XFORWARD", cmd)
        text = msg.decode(errors="replace")
        say("XFORWARD %s -> %d %s" % (cmd, code, text))
        if code != 550 or not text.startswith("5.7.0"):
            say("FAIL: expected 550 5.7.0 to XFORWARD from %s" % args.source)
            ok = False
        if args.file:
            with open(args.file, "rb") as f:
                raw = f.read()
            code, msg = s.mail(args.sender)
            say("then MAIL FROM:<%s> -> %d %s" % (args.sender, code, msg.decode(errors="replace")))
            if code == 250:
                code, msg = s.rcpt(args.rcpt)
                say("then RCPT TO:<%s> -> %d %s" % (args.rcpt, code, msg.decode(errors="replace")))
                if code == 250:
                    code, msg = s.data(raw)
                    say("then DATA -> %d %s" % (code, msg.decode(errors="replace")))
        try:
            s.quit()
        except smtplib.SMTPException:
            pass
    except (smtplib.SMTPException, OSError) as e:
        say("xforward-direct: %r" % (e,))
        return 1
    return 0 if ok else 1


# --------------------------------------------------------------------------- the sink


def sink_messages(d):
    out = []
    for j in sorted(glob.glob(os.path.join(d, "[0-9]*.json"))):
        with open(j, encoding="utf-8") as f:
            meta = json.load(f)
        with open(j[: -len(".json")] + ".eml", "rb") as f:
            raw = f.read()
        out.append((os.path.basename(j)[: -len(".json")], meta, raw))
    return out


def header_block(raw):
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


def has_msgid(raw, msgid):
    pat = re.compile(rb"(?im)^message-id:[ \t]*<" + re.escape(msgid.encode()) + rb">")
    return bool(pat.search(header_block(raw)))


def cmd_wait_rcpts(args):
    want = set(a.lower() for a in args.rcpt)
    deadline = time.monotonic() + args.timeout
    got = set()
    while time.monotonic() < deadline:
        got = set()
        for _, meta, _ in sink_messages(args.sink):
            got.update(a.lower() for a in meta.get("rcpt_tos", []))
        if want <= got:
            return 0
        time.sleep(0.2)
    say("wait-rcpts: after %ss the sink has not seen %s" % (args.timeout, sorted(want - got)))
    return 1


def split_headers(block):
    """Unfolded header fields of a CRLF header block, each as raw bytes
    with its folding kept."""
    fields = []
    for line in block.split(CRLF):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += CRLF + line
        else:
            fields.append(line)
    return fields


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def cmd_check_delivery(args):
    with open(args.sent, "rb") as f:
        sent = f.read()
    msgid = re.search(rb"(?im)^message-id:[ \t]*<([^>]+)>", sent).group(1).decode()
    copies = [(seq, meta, raw) for seq, meta, raw in sink_messages(args.sink) if has_msgid(raw, msgid)]
    ok = True
    want = sorted(a.lower() for a in args.rcpt)
    got = sorted(a.lower() for _, meta, _ in copies for a in meta.get("rcpt_tos", []))
    say("message <%s>: %d cop%s at the sink (%s), recipients %s" % (
        msgid, len(copies), "y" if len(copies) == 1 else "ies",
        ", ".join(seq for seq, _, _ in copies), got))
    if got != want:
        say("FAIL: expected each of %s exactly once, got %s" % (want, got))
        ok = False
    if args.copies is not None and len(copies) != args.copies:
        say("FAIL: expected %d cop%s" % (args.copies, "y" if args.copies == 1 else "ies"))
        ok = False
    for seq, meta, raw in copies:
        tag = "  [%s]" % seq
        if meta.get("mail_from", "").lower() != args.sender.lower():
            say("%s FAIL: MAIL FROM %r, expected %r" % (tag, meta.get("mail_from"), args.sender))
            ok = False
        if args.peer_ip and not str(meta.get("peer", "")).startswith(args.peer_ip + ":"):
            say("%s FAIL: delivered by %s, expected %s" % (tag, meta.get("peer"), args.peer_ip))
            ok = False
        opts = [o.upper() for o in meta.get("mail_options", [])]
        say("%s peer=%s tls=%s mail_options=%s" % (tag, meta.get("peer"), meta.get("tls"), opts))
        for want_opt in args.mail_option:
            if want_opt.upper() not in opts:
                say("%s FAIL: MAIL FROM parameter %s missing at the sink" % (tag, want_opt))
                ok = False
        if not raw.endswith(sent):
            ok = False
            # Where does it go wrong? Compare what follows the trace headers.
            body_at = sent.find(b"\r\n\r\n")
            sent_body = sent[body_at:]
            raw_body_at = raw.find(b"\r\n\r\n")
            say("%s FAIL: stored message (%d octets) does not end with the %d octets sent" % (
                tag, len(raw), len(sent)))
            if raw_body_at >= 0 and raw[raw_body_at:] == sent_body:
                say("%s   the body is identical; the header differs:" % tag)
            else:
                i = first_difference(raw[raw_body_at:], sent_body)
                say("%s   body differs at body offset %d: stored %r vs sent %r" % (
                    tag, i, raw[raw_body_at + i: raw_body_at + i + 60], sent_body[i: i + 60]))
            for line in header_block(raw).split(CRLF):
                say("%s   stored| %s" % (tag, line.decode("utf-8", "replace")))
            continue
        prefix = raw[: len(raw) - len(sent)]
        fields = split_headers(prefix) if prefix else []
        bad = [f for f in fields if not f.lower().startswith(b"received:")]
        if bad or (prefix and not prefix.endswith(CRLF)):
            say("%s FAIL: fields other than Received were added: %r" % (tag, bad))
            ok = False
        for i, f in enumerate(fields):
            say("%s   added| %s" % (tag, f.decode("utf-8", "replace").replace("\r\n", "\n%s        | " % tag)))
        if len(fields) != args.received:
            say("%s FAIL: %d Received headers were added, expected %d" % (tag, len(fields), args.received))
            ok = False
        for i, rx in enumerate(args.received_re):
            if i >= len(fields) or not re.search(rx, fields[i].decode("utf-8", "replace"), re.S):
                say("%s FAIL: added Received header #%d does not match %r" % (tag, i + 1, rx))
                ok = False
        if ok:
            say("%s identical: the %d octets sent follow %d added Received header(s)" % (
                tag, len(sent), len(fields)))
    return 0 if ok else 1


# --------------------------------------------------------------------------- Postfix log


def cmd_maillog(args):
    """Lines for --rcpt with `relay=<R>,` and status=sent; waits a little
    because postlogd writes asynchronously."""
    needle_to = "to=<%s>" % args.rcpt
    needle_relay = "relay=%s," % args.relay
    deadline = time.monotonic() + args.timeout
    lines = []
    while True:
        try:
            with open(args.log, encoding="utf-8", errors="replace") as f:
                lines = [l.rstrip("\n") for l in f if needle_to in l]
        except FileNotFoundError:
            lines = []
        good = [l for l in lines if needle_relay in l and "status=sent" in l]
        if good or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for l in good:
        say("  " + l)
    if not good:
        say("FAIL: no 'status=sent' line for %s with %s in %s; lines for it:" % (
            needle_to, needle_relay, args.log))
        for l in lines:
            say("  " + l)
        return 1
    return 0


# --------------------------------------------------------------------------- sealpost DB / admin


def open_db(path):
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)


def cmd_db_client_ip(args):
    deadline = time.monotonic() + args.timeout
    rows = []
    while True:
        try:
            with open_db(args.db) as db:
                rows = db.execute(
                    "SELECT id, client_ip, client_name, helo, protocol, body_8bit FROM messages "
                    "WHERE sender = ? COLLATE NOCASE", (args.sender,)).fetchall()
        except sqlite3.Error as e:
            say("db-client-ip: %s: %s" % (args.db, e))
            rows = []
        if rows or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for r in rows:
        say("  messages: id=%s client_ip=%s client_name=%s helo=%s protocol=%s body_8bit=%s" % r)
    if len(rows) != 1:
        say("FAIL: expected exactly one message from %s, found %d" % (args.sender, len(rows)))
        return 1
    if rows[0][1] != args.expect:
        say("FAIL: client_ip is %r, expected %r" % (rows[0][1], args.expect))
        return 1
    if args.expect_8bit and rows[0][5] != 1:
        say("FAIL: body_8bit is %r, expected 1" % (rows[0][5],))
        return 1
    return 0


def cmd_db_no_ip(args):
    with open_db(args.db) as db:
        rows = db.execute("SELECT id, sender, client_ip FROM messages").fetchall()
    bad = [r for r in rows if r[2] == args.ip]
    for r in rows:
        say("  messages: id=%s sender=%s client_ip=%s" % r)
    if bad:
        say("FAIL: %d message(s) recorded with the forged client_ip %s" % (len(bad), args.ip))
        return 1
    return 0


def cmd_wait_health(args):
    deadline = time.monotonic() + args.timeout
    body = None
    while True:
        try:
            with urllib.request.urlopen(args.url, timeout=5) as r:
                body = json.load(r)
            q = (body.get("queue") or {})
            if body.get("status") == "ok" and q.get("queued") == 0:
                say("  %s" % json.dumps(body))
                return 0
        except (OSError, ValueError) as e:
            body = repr(e)
        if time.monotonic() >= deadline:
            say("FAIL: %s after %ss: %s" % (args.url, args.timeout, body))
            return 1
        time.sleep(0.3)


# --------------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("free-port")

    a = sub.add_parser("wait-line")
    a.add_argument("file")
    a.add_argument("regex")
    a.add_argument("timeout", type=float)
    a.add_argument("pid", type=int, nargs="?", help="give up early when this process is gone")

    a = sub.add_parser("make-message")
    a.add_argument("--kind", required=True, choices=["plain", "multi", "utf8", "big"])
    a.add_argument("--out", required=True)
    a.add_argument("--wire")
    a.add_argument("--from", dest="sender", required=True)
    a.add_argument("--to", required=True)
    a.add_argument("--msgid", required=True)
    a.add_argument("--subject", required=True)
    a.add_argument("--size", type=int, default=1024 * 1024)

    a = sub.add_parser("send-smtp")
    a.add_argument("--server", required=True)
    a.add_argument("--source")
    a.add_argument("--helo", default="interop-client.test")
    a.add_argument("--from", dest="sender", required=True)
    a.add_argument("--rcpt", required=True, help="comma-separated")
    a.add_argument("--file", required=True)
    a.add_argument("--mail-option", action="append", default=[])
    a.add_argument("--timeout", type=float, default=60)

    a = sub.add_parser("xforward-direct")
    a.add_argument("--server", required=True)
    a.add_argument("--source", required=True)
    a.add_argument("--helo", default="direct-client.test")
    a.add_argument("--forged", required=True)
    a.add_argument("--from", dest="sender")
    a.add_argument("--rcpt")
    a.add_argument("--file")
    a.add_argument("--timeout", type=float, default=30)

    a = sub.add_parser("wait-rcpts")
    a.add_argument("--sink", required=True)
    a.add_argument("--rcpt", action="append", required=True)
    a.add_argument("--timeout", type=float, default=60)

    a = sub.add_parser("check-delivery")
    a.add_argument("--sink", required=True)
    a.add_argument("--sent", required=True)
    a.add_argument("--from", dest="sender", required=True)
    a.add_argument("--rcpt", action="append", required=True)
    a.add_argument("--copies", type=int)
    a.add_argument("--peer-ip")
    a.add_argument("--received", type=int, required=True)
    a.add_argument("--received-re", action="append", default=[])
    a.add_argument("--mail-option", action="append", default=[])

    a = sub.add_parser("maillog")
    a.add_argument("--log", required=True)
    a.add_argument("--rcpt", required=True)
    a.add_argument("--relay", required=True)
    a.add_argument("--timeout", type=float, default=10)

    a = sub.add_parser("db-client-ip")
    a.add_argument("--db", required=True)
    a.add_argument("--sender", required=True)
    a.add_argument("--expect", required=True)
    a.add_argument("--expect-8bit", action="store_true")
    a.add_argument("--timeout", type=float, default=10)

    a = sub.add_parser("db-no-ip")
    a.add_argument("--db", required=True)
    a.add_argument("--ip", required=True)

    a = sub.add_parser("wait-health")
    a.add_argument("--url", required=True)
    a.add_argument("--timeout", type=float, default=30)

    args = p.parse_args()
    fn = globals()["cmd_" + args.cmd.replace("-", "_")]
    return fn(args)


if __name__ == "__main__":
    sys.exit(main())
