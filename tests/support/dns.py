#!/usr/bin/python3
"""Tiny authoritative DNS server for sealpost end-to-end tests (dnslib based).

Usage:
  dns.py --listen 127.0.0.1:0 --zone ZONE.json [--ttl SECONDS]
         [--servfail REGEX] [--no-additional] [--verbose]

It listens on UDP and TCP on the same port. With port 0 it picks a port that
is free for both. Once both are listening it prints exactly one line
"READY <port>" to stdout (flushed). Nothing else is ever written to stdout.
Diagnostics go to stderr. It is quiet by default; --verbose logs every query.

ZONE.json maps names (matched case-insensitively, trailing dot ignored) to
records:
  {"ext.example":      {"MX": [[10, "mx1.ext.example"], [20, "mx2.ext.example"]]},
   "mx1.ext.example":  {"A": ["127.0.0.1"]},
   "mx2.ext.example":  {"A": ["127.0.0.1"], "AAAA": ["::1"]},
   "nullmx.example":   {"MX": [[0, "."]]},
   "implicit.example": {"A": ["127.0.0.1"]}}
Supported types: A, AAAA, MX ([preference, exchange]; exchange "." is the
RFC 7505 null MX), TXT (strings; each one record). A name may map to {} (exists, no records).

Answers (all with AA set, RA clear, TTL --ttl, default 60):
  name in zone, type present   NOERROR, records in ANSWER (ANY: all of them)
  name in zone, type absent    NOERROR, empty ANSWER, SOA in AUTHORITY (NODATA)
  empty non-terminal           as above. "b.example" when only "a.b.example"
                               is in the zone counts as one.
  name not in zone             NXDOMAIN, SOA in AUTHORITY
  name matches --servfail RE   SERVFAIL, no records (re.search, case-insensitive,
                               on the name without trailing dot)
The server is authoritative for the root zone. The SOA is
  ". TTL IN SOA ns.sealpost-test. hostmaster.sealpost-test. 1 3600 600 86400 TTL"
and "SOA ." is answered with it. MX answers carry the A/AAAA records of
in-zone exchanges in ADDITIONAL unless --no-additional is given. EDNS is echoed
(OPT with udp 1232). UDP answers larger than the client's limit (512, or its
EDNS size) come back empty with TC set, so the client retries over TCP. A TCP
connection may carry several queries.

Signals: SIGTERM/SIGINT stop it cleanly (exit status 0). SIGHUP re-reads
ZONE.json. If the new file is invalid the old zone is kept and the error goes
to stderr. An invalid zone at startup is an error (exit status 2, nothing on
stdout).

Requires Debian's python3-dnslib (0.9.x). Run it with /usr/bin/python3.
"""

import argparse
import ipaddress
import json
import re
import signal
import socket
import socketserver
import struct
import sys
import threading

from dnslib import (A, AAAA, TXT, CLASS, DNSHeader, DNSRecord, EDNS0, MX, OPCODE, QTYPE,
                    RCODE, RR, SOA)

SUPPORTED = ("A", "AAAA", "MX", "TXT")
SOA_MNAME = "ns.sealpost-test."
SOA_RNAME = "hostmaster.sealpost-test."
TCP_IDLE_TIMEOUT = 30.0
EDNS_UDP_LEN = 1232
CLASS_IN = 1
CLASS_ANY = 255

VERBOSE = False


def log(msg):
    sys.stderr.write("dns.py: %s\n" % msg)
    sys.stderr.flush()


def vlog(msg):
    if VERBOSE:
        log(msg)


def norm(name):
    """Canonical form of a domain name: lower case, no trailing dot ("" = root)."""
    name = str(name).strip().lower()
    return "" if name in ("", ".") else name.rstrip(".")


def valid_name(name):
    """name is in norm() form; "" is the root."""
    labels = name.split(".") if name else []
    return len(name) <= 253 and all(0 < len(l.encode("utf-8")) <= 63 for l in labels)


# ------------------------------------------------------------------ zone
class ZoneError(Exception):
    pass


def load_zone(path):
    """Parse and validate ZONE.json. Returns {name: {"A": [...], ...}}."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ZoneError("cannot read zone %s: %s" % (path, e))
    if not isinstance(raw, dict):
        raise ZoneError("zone must be a JSON object mapping names to records")
    zone = {}
    for name, recs in raw.items():
        key = norm(name)
        if key in zone:
            raise ZoneError("name %r appears twice (names are case-insensitive)" % name)
        if not isinstance(recs, dict):
            raise ZoneError("%r: records must be an object like {\"A\": [...]}" % name)
        if not valid_name(key):
            raise ZoneError("%r: not a valid domain name" % name)
        out = {}
        for rtype, values in recs.items():
            t = str(rtype).upper()
            if t not in SUPPORTED:
                raise ZoneError("%r: unsupported record type %r (supported: %s)"
                                % (name, rtype, ", ".join(SUPPORTED)))
            if not isinstance(values, list):
                raise ZoneError("%r %s: value must be a list" % (name, t))
            checked = []
            for v in values:
                if t == "A":
                    try:
                        checked.append(str(ipaddress.IPv4Address(v)))
                    except (ValueError, TypeError):
                        raise ZoneError("%r A: %r is not an IPv4 address" % (name, v))
                elif t == "AAAA":
                    try:
                        checked.append(str(ipaddress.IPv6Address(v)))
                    except (ValueError, TypeError):
                        raise ZoneError("%r AAAA: %r is not an IPv6 address" % (name, v))
                elif t == "TXT":
                    if not isinstance(v, str) or len(v.encode("utf-8")) > 255:
                        raise ZoneError("%r TXT: %r must be a string of at most 255 octets"
                                        % (name, v))
                    checked.append(v)
                else:  # MX
                    if (not isinstance(v, list) or len(v) != 2
                            or not isinstance(v[0], int) or isinstance(v[0], bool)
                            or not 0 <= v[0] <= 65535 or not isinstance(v[1], str)):
                        raise ZoneError("%r MX: %r must be [preference 0-65535, \"exchange\"]"
                                        % (name, v))
                    if not valid_name(norm(v[1])):
                        raise ZoneError("%r MX: exchange %r is not a valid domain name"
                                        % (name, v[1]))
                    checked.append((v[0], norm(v[1])))
            out[t] = checked
        zone[key] = out
    return zone


class Zone:
    """The current zone plus derived lookups. Replaced whole on reload."""

    def __init__(self, records):
        self.records = records
        # Every proper ancestor of a zone name exists as an empty non-terminal.
        self.ents = set()
        for name in records:
            labels = name.split(".") if name else []
            for i in range(1, len(labels) + 1):
                self.ents.add(".".join(labels[i:]))

    def exists(self, name):
        return name in self.records or name in self.ents


# ------------------------------------------------------------------ answering
class Responder:
    def __init__(self, zone, ttl, servfail_re, additional):
        self.zone = zone  # swapped atomically on SIGHUP
        self.ttl = ttl
        self.servfail_re = servfail_re
        self.additional = additional

    def soa(self):
        return RR(".", QTYPE.SOA, CLASS.IN, self.ttl,
                  SOA(SOA_MNAME, SOA_RNAME, (1, 3600, 600, 86400, self.ttl)))

    def rrs(self, zone, owner, name, rtype):
        """RRs of type rtype ("A"/"AAAA"/"MX"/"TXT") at name, owner label as given."""
        out = []
        for v in zone.records.get(name, {}).get(rtype, []):
            if rtype == "A":
                rd = A(v)
            elif rtype == "AAAA":
                rd = AAAA(v)
            elif rtype == "TXT":
                rd = TXT(v.encode("utf-8"))
            else:
                rd = MX(v[1] + "." if v[1] else ".", v[0])
            out.append(RR(owner, getattr(QTYPE, rtype), CLASS.IN, self.ttl, rd))
        return out

    def safe_answer(self, data, udp):
        """answer(), but a bug here turns into SERVFAIL rather than silence."""
        try:
            return self.answer(data, udp)
        except Exception as e:  # noqa: BLE001 - never let one query kill us
            log("internal error answering query: %r" % (e,))
            if len(data) < 12:
                return None, "internal error -> dropped"
            qid, flags = struct.unpack("!HH", data[:4])
            rep = DNSRecord(DNSHeader(id=qid, qr=1, rd=(flags >> 8) & 1,
                                      rcode=RCODE.SERVFAIL))
            return rep.pack(), "internal error -> SERVFAIL"

    def answer(self, data, udp):
        """Build the reply bytes for request bytes. udp=False for TCP.

        Returns (bytes or None, summary string)."""
        try:
            req = DNSRecord.parse(data)
        except Exception as e:  # noqa: BLE001 - dnslib raises various types on garbage
            if len(data) >= 12:
                # Best effort FORMERR echoing the id.
                qid = struct.unpack("!H", data[:2])[0]
                rep = DNSRecord(DNSHeader(id=qid, qr=1, rd=0, rcode=RCODE.FORMERR))
                return rep.pack(), "unparsable request (%s) -> FORMERR" % e
            return None, "unparsable request (%s) -> dropped" % e
        if req.header.qr:
            return None, "response packet ignored"

        opts = [r for r in req.ar if r.rtype == QTYPE.OPT]
        rep = DNSRecord(DNSHeader(id=req.header.id, qr=1, aa=1, ra=0,
                                  rd=req.header.rd, opcode=req.header.opcode))
        for q in req.questions:
            rep.add_question(q)
        if opts:
            rep.add_ar(EDNS0(udp_len=EDNS_UDP_LEN))

        if req.header.opcode != OPCODE.QUERY:
            rep.header.aa = 0
            rep.header.rcode = RCODE.NOTIMP
            return self.finish(rep, udp, opts, "opcode %s -> NOTIMP" % req.header.opcode)
        if len(req.questions) != 1:
            rep.header.aa = 0
            rep.header.rcode = RCODE.FORMERR
            return self.finish(rep, udp, opts, "%d questions -> FORMERR" % len(req.questions))

        q = req.questions[0]
        qname = norm(q.qname)
        qtype = QTYPE.get(q.qtype, str(q.qtype))
        desc = "%s %s" % (qname or ".", qtype)
        if q.qclass not in (CLASS_IN, CLASS_ANY):
            rep.header.aa = 0
            rep.header.rcode = RCODE.REFUSED
            return self.finish(rep, udp, opts, desc + " class %s -> REFUSED" % q.qclass)
        if self.servfail_re and self.servfail_re.search(qname):
            rep.header.aa = 0
            rep.header.rcode = RCODE.SERVFAIL
            return self.finish(rep, udp, opts, desc + " -> SERVFAIL (--servfail)")

        zone = self.zone
        owner = q.qname
        if not zone.exists(qname):
            rep.header.rcode = RCODE.NXDOMAIN
            rep.add_auth(self.soa())
            return self.finish(rep, udp, opts, desc + " -> NXDOMAIN")

        if qtype == "ANY":
            types = [t for t in SUPPORTED]
        elif qtype in SUPPORTED:
            types = [qtype]
        else:
            types = []
        answers = []
        for t in types:
            answers.extend(self.rrs(zone, owner, qname, t))
        if qname == "" and qtype in ("SOA", "ANY"):
            answers.append(self.soa())
        if not answers:
            rep.add_auth(self.soa())
            return self.finish(rep, udp, opts, desc + " -> NODATA")
        for rr in answers:
            rep.add_answer(rr)
        if self.additional:
            seen = set()
            for rr in answers:
                if rr.rtype != QTYPE.MX:
                    continue
                ex = norm(rr.rdata.label)
                if ex in seen or not ex:
                    continue
                seen.add(ex)
                for t in ("A", "AAAA"):
                    for add in self.rrs(zone, ex + ".", ex, t):
                        # keep the OPT record last
                        rep.ar.insert(len(rep.ar) - (1 if opts else 0), add)
            rep.set_header_qa()
        summary = desc + " -> " + ", ".join(
            "%s %s" % (QTYPE.get(rr.rtype), rr.rdata) for rr in answers)
        return self.finish(rep, udp, opts, summary)

    @staticmethod
    def finish(rep, udp, opts, summary):
        """Pack rep; over UDP, truncate (TC) if too big. Returns (bytes, summary)."""
        wire = rep.pack()
        if udp:
            limit = 512
            if opts:
                limit = max(512, min(opts[0].rclass, 65535))
            if len(wire) > limit:
                tc = DNSRecord(DNSHeader(id=rep.header.id, qr=1, aa=rep.header.aa,
                                         tc=1, rd=rep.header.rd,
                                         rcode=rep.header.rcode))
                for q in rep.questions:
                    tc.add_question(q)
                if opts:
                    tc.add_ar(EDNS0(udp_len=EDNS_UDP_LEN))
                wire = tc.pack()
                summary += " [truncated: %d > %d bytes, TC set]" % (len(rep.pack()), limit)
        return wire, summary


# ------------------------------------------------------------------ servers
class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        wire, summary = self.server.responder.safe_answer(data, udp=True)
        vlog("udp %s:%d %s" % (self.client_address[0], self.client_address[1], summary))
        if wire is not None:
            try:
                sock.sendto(wire, self.client_address)
            except OSError:
                pass


class TCPHandler(socketserver.BaseRequestHandler):
    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def handle(self):
        self.request.settimeout(TCP_IDLE_TIMEOUT)
        peer = "%s:%d" % (self.client_address[0], self.client_address[1])
        try:
            while not self.server.stopping.is_set():
                head = self.recv_exact(2)
                if head is None:
                    return
                (length,) = struct.unpack("!H", head)
                data = self.recv_exact(length)
                if data is None:
                    return
                wire, summary = self.server.responder.safe_answer(data, udp=False)
                vlog("tcp %s %s" % (peer, summary))
                if wire is None:
                    return
                self.request.sendall(struct.pack("!H", len(wire)) + wire)
        except (OSError, socket.timeout):
            return


class ThreadingUDP(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    allow_reuse_address = False


class ThreadingTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


def make_server(cls, family, addr, handler, responder, stopping):
    cls_f = type(cls.__name__ + ("6" if family == socket.AF_INET6 else "4"),
                 (cls,), {"address_family": family})
    srv = cls_f(addr, handler, bind_and_activate=False)
    try:
        if family == socket.AF_INET6:
            srv.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        srv.server_bind()
        srv.server_activate()
    except BaseException:
        srv.server_close()
        raise
    srv.responder = responder
    srv.stopping = stopping
    return srv


def bind_both(host, port, responder, stopping, attempts=20):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last = None
    for _ in range(attempts if port == 0 else 1):
        udp = make_server(ThreadingUDP, family, (host, port), UDPHandler, responder, stopping)
        chosen = udp.server_address[1]
        try:
            tcp = make_server(ThreadingTCP, family, (host, chosen), TCPHandler,
                              responder, stopping)
        except OSError as e:
            last = e
            udp.server_close()
            continue
        return udp, tcp, chosen
    raise OSError("could not bind UDP and TCP on the same port at %s: %s" % (host, last))


def parse_listen(text):
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError("expected HOST:PORT or [IPV6]:PORT, got %r" % text)
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise argparse.ArgumentTypeError("port out of range: %d" % port)
    return host, port


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description="Tiny authoritative DNS server for sealpost tests")
    ap.add_argument("--listen", required=True, type=parse_listen,
                    help="HOST:PORT (UDP and TCP); port 0 picks a free one")
    ap.add_argument("--zone", required=True, help="ZONE.json")
    ap.add_argument("--ttl", type=int, default=60, help="TTL of every record (default 60)")
    ap.add_argument("--servfail", metavar="REGEX",
                    help="answer SERVFAIL for names matching REGEX (re.search, case-insensitive)")
    ap.add_argument("--no-additional", action="store_true",
                    help="do not add A/AAAA of MX exchanges to the ADDITIONAL section")
    ap.add_argument("--verbose", action="store_true", help="log each query to stderr")
    args = ap.parse_args()
    VERBOSE = args.verbose
    if not 0 <= args.ttl <= 2**31 - 1:
        ap.error("--ttl out of range")
    servfail_re = re.compile(args.servfail, re.IGNORECASE) if args.servfail else None

    try:
        zone = Zone(load_zone(args.zone))
    except ZoneError as e:
        log(str(e))
        return 2
    responder = Responder(zone, args.ttl, servfail_re, not args.no_additional)

    stopping = threading.Event()
    reload_requested = threading.Event()

    def on_stop(signum, frame):
        stopping.set()

    def on_hup(signum, frame):
        reload_requested.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)

    host, port = args.listen
    try:
        udp, tcp, chosen = bind_both(host, port, responder, stopping)
    except OSError as e:
        log(str(e))
        return 1

    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                                daemon=True) for s in (udp, tcp)]
    for t in threads:
        t.start()
    vlog("serving %d names on %s port %d (udp+tcp)" % (len(zone.records), host, chosen))
    sys.stdout.write("READY %d\n" % chosen)
    sys.stdout.flush()

    while not stopping.is_set():
        stopping.wait(0.5)
        if reload_requested.is_set():
            reload_requested.clear()
            try:
                responder.zone = Zone(load_zone(args.zone))
                vlog("zone reloaded: %d names" % len(responder.zone.records))
            except ZoneError as e:
                log("reload failed, keeping old zone: %s" % e)

    for s in (udp, tcp):
        s.shutdown()
        s.server_close()
    vlog("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
