"""When a server's bytes reached each client, by the kernel's clock, not the load generator's.

A single Python load generator reading thousands of connections timestamps a stanza when it gets round to parsing
it, which can be seconds after the kernel received it: the measured "spread" is then mostly the generator's own
queue. `WireClock` runs a packet reader in a process of its own (an AF_PACKET socket on the loopback interface,
which needs root) that stamps every TCP segment the server sends with the kernel's receive time (SO_TIMESTAMPNS)
and keeps, per marker and client port, the first segment that carries the marker. It sees what the server wrote,
in plain text (boshcm and Prosody serve the benchmarks without TLS on the loopback interface).

    clock = WireClock(server_port=5280, pattern=rb"<question [^>]*?id=['\\"]([^'\\"]+)")
    clock.start(); ...; arrivals = clock.stop()  # {marker: {client port: seconds}}
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ETH_P_ALL = 0x0003
PACKET_HOST = 0  # a packet addressed to this host (on lo, each segment also shows once as PACKET_OUTGOING)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class WireClock:
    def __init__(self, *, server_ports: tuple[int, ...], pattern: bytes) -> None:
        self.server_ports, self.pattern = server_ports, pattern
        self._output = Path(tempfile.mkstemp(suffix=".json")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0

    def start(self) -> None:
        ready = Path(f"{self._output}.ready")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.perf.wire_clock", str(self._output), self.pattern.decode("latin-1"),
             *map(str, self.server_ports)])
        deadline = time.monotonic() + 10
        while not ready.exists():  # the socket is open: nothing the server sends from now on is missed
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("the packet reader did not start (root is needed for AF_PACKET)")
            time.sleep(0.05)
        ready.unlink()

    def stop(self) -> dict[str, dict[int, float]]:
        """Per marker, per client port: the kernel time (time.time() scale) of the first segment carrying it."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        self._process.wait(30)
        found = json.loads(self._output.read_text())
        self._output.unlink()
        return {marker: {int(port): stamp for port, stamp in ports.items()} for marker, ports in found.items()}


def _read(output: Path, pattern: re.Pattern[bytes], server_ports: set[int]) -> None:
    found: dict[str, dict[int, float]] = {}
    stopping = False

    def stop(_signal: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniffer.bind(("lo", 0))
    sniffer.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024 * 1024)
    sniffer.settimeout(0.2)
    Path(f"{output}.ready").touch()
    while not stopping:
        try:
            data, ancillary, _flags, address = sniffer.recvmsg(65_600, 64)
        except (TimeoutError, InterruptedError):
            continue
        if address[2] != PACKET_HOST or len(data) < 54 or data[12:14] != b"\x08\x00":
            continue  # IPv4 only (the benchmarks listen on 127.0.0.1)
        ip_header = (data[14] & 0x0F) * 4
        if data[23] != 6:  # TCP
            continue
        tcp = 14 + ip_header
        source_port, destination_port = struct.unpack("!HH", data[tcp:tcp + 4])
        if source_port not in server_ports:
            continue
        payload = data[tcp + (data[tcp + 12] >> 4) * 4:]
        stamp = next((struct.unpack("qq", value[:16]) for level, kind, value in ancillary
                      if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
        seconds = stamp[0] + stamp[1] / 1e9 if stamp else time.time()
        for match in pattern.finditer(payload):
            found.setdefault(match.group(1).decode(), {}).setdefault(destination_port, seconds)
    output.write_text(json.dumps(found))


if __name__ == "__main__":
    _read(Path(sys.argv[1]), re.compile(sys.argv[2].encode("latin-1")), {int(port) for port in sys.argv[3:]})
