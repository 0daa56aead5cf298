#!/usr/bin/python3
"""Next-hop SMTP sink for sealpost end-to-end tests (aiosmtpd based).

Usage:
  sink.py --listen 127.0.0.1:0 --dir DIR [--tempfail-rcpt REGEX]
          [--permfail-rcpt REGEX] [--tempfail-first N]
          [--tls-cert CERT --tls-key KEY] [--hostname NAME] [--max-size BYTES]
          [--no-smtputf8] [--no-8bitmime] [--data-delay SECONDS]
          [--drop-reused | --drop-reused-421] [--quiet]

Once listening it prints exactly one line "READY <port>" to stdout (flushed);
nothing else is ever written to stdout. Diagnostics go to stderr.

Every accepted message is stored as
  DIR/<seq>.eml   the DATA payload exactly as received (dot-unstuffed, CRLF
                  line endings kept, terminating "." line excluded), no changes
  DIR/<seq>.json  {"mail_from", "rcpt_tos", "mail_options", "rcpt_options",
                   "peer": "ip:port", "tls": bool}
<seq> is a zero-padded counter (000001, 000002, ...). The .eml is written first
and the .json last, each via a temp file + rename, so a reader that sees
<seq>.json can rely on <seq>.eml being complete. Sequence numbers continue
after the highest one already in DIR and never overwrite an existing file.

Failure injection:
  --tempfail-rcpt REGEX  RCPT whose address matches (re.search, case-insensitive)
                         -> 450 4.2.1 Mailbox temporarily unavailable
  --permfail-rcpt REGEX  -> 550 5.1.1 No such user here   (checked first)
  --tempfail-first N     the first N DATA transactions of the sink's lifetime
                         get 451 4.3.0 at end of DATA (message not written)
  --data-delay SECONDS   wait this long after the data before storing and
                         answering (a slow next hop)
  --drop-reused          a connection that already carried a message is closed,
                         without a reply, when its next MAIL arrives (a peer
                         whose idle timeout fires just as the client reuses it)
  --drop-reused-421      the same, but answering that MAIL "421 4.4.2" first (as
                         Postfix's smtpd does when its timer fires)

Requires Debian's python3-aiosmtpd (1.4.x). SIGTERM/SIGINT stop it cleanly
(exit status 0).
"""

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP

SEQ_WIDTH = 6
SEQ_RE = re.compile(r"^(\d{%d,})\.(?:eml|json)$" % SEQ_WIDTH)

log = logging.getLogger("sink")


def parse_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % value)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise argparse.ArgumentTypeError("missing host in %r" % value)
    port = int(port)
    if port > 65535:
        raise argparse.ArgumentTypeError("bad port in %r" % value)
    return host, port


def parse_regex(value):
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as e:
        raise argparse.ArgumentTypeError("bad regex %r: %s" % (value, e))


def non_negative_int(value):
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def clean_str(s):
    """aiosmtpd decodes command arguments as UTF-8 with surrogateescape; make
    sure invalid bytes cannot produce lone surrogates in the JSON output."""
    if s is None:
        return None
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def format_peer(peer):
    if not peer:
        return None
    host, port = peer[0], peer[1]
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


class Store:
    """Allocates sequence numbers and writes messages atomically."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        highest = 0
        for name in os.listdir(directory):
            m = SEQ_RE.match(name)
            if m:
                highest = max(highest, int(m.group(1)))
        self.next_seq = highest + 1
        self.tmp_counter = 0

    def _tmp_path(self):
        self.tmp_counter += 1
        return os.path.join(self.dir, ".tmp-%d-%d" % (os.getpid(), self.tmp_counter))

    def _write_tmp(self, data):
        tmp = self._tmp_path()
        with open(tmp, "xb") as f:
            f.write(data)
        return tmp

    def save(self, raw, meta):
        """Runs synchronously inside the event loop (no await), so sequence
        allocation cannot interleave between connections of this process.
        os.link() refuses to overwrite, which also keeps two sinks sharing a
        directory from clobbering each other."""
        tmp = self._write_tmp(raw)
        try:
            while True:
                seq = "%0*d" % (SEQ_WIDTH, self.next_seq)
                self.next_seq += 1
                eml = os.path.join(self.dir, seq + ".eml")
                try:
                    os.link(tmp, eml)
                    break
                except FileExistsError:
                    continue
        finally:
            os.unlink(tmp)
        body = json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
        tmp = self._write_tmp(body)
        os.rename(tmp, os.path.join(self.dir, seq + ".json"))
        return seq


class SinkHandler:
    def __init__(self, args, store):
        self.store = store
        self.tempfail_rcpt = args.tempfail_rcpt
        self.permfail_rcpt = args.permfail_rcpt
        self.tempfail_left = args.tempfail_first
        self.data_count = 0
        self.quiet = args.quiet
        self.data_delay = args.data_delay
        self.drop_reused = args.drop_reused or args.drop_reused_421
        self.drop_reused_421 = args.drop_reused_421
        self.no_8bitmime = args.no_8bitmime

    def note(self, fmt, *a):
        if not self.quiet:
            log.info(fmt, *a)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With a handle_EHLO hook aiosmtpd leaves session.host_name to us.
        session.host_name = hostname
        out = []
        for line in responses:
            # No authenticator is configured, so never advertise AUTH
            # (aiosmtpd would offer it after STARTTLS).
            if line.startswith("250-AUTH"):
                continue
            if self.no_8bitmime and line[4:].upper() == "8BITMIME":
                continue
            if line == "250 HELP":
                # aiosmtpd handles pipelined commands but does not say so.
                out.append("250-PIPELINING")
            out.append(line)
        return out

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.drop_reused and getattr(session, "carried", 0) > 0:
            self.note("%s MAIL on a reused connection -> closed (drop-reused)",
                      format_peer(session.peer))
            if self.drop_reused_421:
                asyncio.get_running_loop().call_later(0.05, server.transport.close)
                return "421 4.4.2 sink.sealpost.test Error: timeout exceeded"
            server.transport.close()
            return "421 4.4.2 closing"  # never reaches the client
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.permfail_rcpt and self.permfail_rcpt.search(address):
            self.note("%s RCPT %s -> 550 (permfail)", format_peer(session.peer), clean_str(address))
            return "550 5.1.1 No such user here"
        if self.tempfail_rcpt and self.tempfail_rcpt.search(address):
            self.note("%s RCPT %s -> 450 (tempfail)", format_peer(session.peer), clean_str(address))
            return "450 4.2.1 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_count += 1
        if self.tempfail_left > 0:
            self.tempfail_left -= 1
            self.note("%s DATA #%d -> 451 (tempfail-first, %d left)",
                      format_peer(session.peer), self.data_count, self.tempfail_left)
            return "451 4.3.0 Temporary failure, try again"
        if self.data_delay > 0:
            await asyncio.sleep(self.data_delay)
        session.carried = getattr(session, "carried", 0) + 1
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        if isinstance(raw, str):  # only if someone switches decode_data on
            raw = raw.encode("utf-8", "surrogateescape")
        meta = {
            "mail_from": clean_str(envelope.mail_from),
            "rcpt_tos": [clean_str(r) for r in envelope.rcpt_tos],
            "mail_options": [clean_str(o) for o in envelope.mail_options],
            "rcpt_options": [clean_str(o) for o in envelope.rcpt_options],
            "peer": format_peer(session.peer),
            "tls": session.ssl is not None,
        }
        try:
            seq = self.store.save(bytes(raw), meta)
        except OSError as e:
            log.error("cannot store message: %s", e)
            return "451 4.3.0 Local error in processing"
        self.note("%s stored %s (%d bytes, from=%s, rcpts=%d, tls=%s)",
                  meta["peer"], seq, len(raw), meta["mail_from"],
                  len(meta["rcpt_tos"]), meta["tls"])
        return "250 2.0.0 OK queued as %s" % seq


class TrackedSMTP(SMTP):
    """SMTP protocol that registers itself so shutdown can close connections."""

    connections = set()

    def connection_made(self, transport):
        TrackedSMTP.connections.add(self)  # also called again after STARTTLS
        super().connection_made(transport)

    def connection_lost(self, error):
        TrackedSMTP.connections.discard(self)
        super().connection_lost(error)


async def main_async(args):
    store = Store(args.dir)
    handler = SinkHandler(args, store)

    tls_context = None
    if args.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    def factory():
        return TrackedSMTP(
            handler,
            enable_SMTPUTF8=not args.no_smtputf8,
            decode_data=False,
            data_size_limit=args.max_size,
            hostname=args.hostname,  # explicit: avoids a getfqdn() DNS lookup
            tls_context=tls_context,
            require_starttls=False,
        )

    loop = asyncio.get_running_loop()
    host, port = args.listen
    server = await loop.create_server(factory, host=host, port=port,
                                      reuse_address=True)
    actual_port = server.sockets[0].getsockname()[1]

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    sys.stdout.write("READY %d\n" % actual_port)
    sys.stdout.flush()
    if not args.quiet:
        log.info("listening on %s port %d, storing into %s", host, actual_port, args.dir)

    await stop.wait()
    if not args.quiet:
        log.info("shutting down")
    server.close()
    for conn in list(TrackedSMTP.connections):
        if conn.transport is not None:
            conn.transport.close()
    await server.wait_closed()
    await asyncio.sleep(0)  # let connection_lost callbacks run


def main():
    p = argparse.ArgumentParser(description="Next-hop SMTP sink for sealpost e2e tests")
    p.add_argument("--listen", required=True, type=parse_listen, metavar="HOST:PORT",
                   help="address to listen on; port 0 picks a free port")
    p.add_argument("--dir", required=True, help="directory to store messages in")
    p.add_argument("--tempfail-rcpt", type=parse_regex, metavar="REGEX")
    p.add_argument("--permfail-rcpt", type=parse_regex, metavar="REGEX")
    p.add_argument("--tempfail-first", type=non_negative_int, default=0, metavar="N")
    p.add_argument("--tls-cert", metavar="CERT")
    p.add_argument("--tls-key", metavar="KEY")
    p.add_argument("--hostname", default="sink.sealpost.test",
                   help="name used in the greeting and EHLO reply")
    p.add_argument("--max-size", type=non_negative_int, default=32 * 1024 * 1024,
                   metavar="BYTES", help="SIZE limit (0 = unlimited, not advertised)")
    p.add_argument("--no-smtputf8", action="store_true",
                   help="do not advertise SMTPUTF8 (a next hop without RFC 6531)")
    p.add_argument("--no-8bitmime", action="store_true",
                   help="do not advertise 8BITMIME (a next hop without RFC 6152)")
    p.add_argument("--data-delay", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long before answering the data")
    p.add_argument("--drop-reused", action="store_true",
                   help="close a reused connection when its next MAIL arrives")
    p.add_argument("--drop-reused-421", action="store_true",
                   help="answer 421 to a reused connection's MAIL, then close it")
    p.add_argument("--quiet", action="store_true", help="no per-message stderr logging")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key must be given together")

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="sink[%(process)d]: %(message)s")
    # aiosmtpd logs every command at INFO on "mail.log"; keep only problems.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    try:
        asyncio.run(main_async(args))
    except OSError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
