"""Debian's ejabberd (23.01) for tests and benchmarks: one node, or two nodes joined as a cluster.

Each node runs as the `ejabberd` user (setpriv, when the tests run as root) from its own directory under /tmp
(configuration, Mnesia spool, logs), on ports from `free_port()`, without touching /etc (../shared/INTEROP.md).
The API is synchronous (subprocesses and threads), so a module- or session-scoped fixture works whatever event
loop the tests use:

    with ejabberd_node(accounts={"alice": "alice-secret"}) as node:      # node.c2s_port, node.bosh_url, ...
        ...
    with ejabberd_cluster(accounts=...) as (a, b):                        # b joined a; a.kill() crashes one
        ...

`EjabberdCluster` is the same in steps, for a test that starts other things while the cluster starts.

Bulk accounts: `register_in_band` (XEP-0077 over plain c2s) registers hundreds a second, where each
`node.register` starts an Erlang VM (~1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lxml import etree

from boshcm.tls import ensure_self_signed
from tests.interop.prosody import free_port

EJABBERDCTL = shutil.which("ejabberdctl") or "/usr/sbin/ejabberdctl"
USER = "ejabberd"
START_TIMEOUT_SECONDS = 60.0

CTL_CONFIG = """\
ERLANG_NODE={name}
EJABBERD_BYPASS_WARNINGS=true
EJABBERD_PID_PATH={dir}/ejabberd.pid
ERL_EPMD_ADDRESS=127.0.0.1
ERL_OPTIONS="-setcookie {cookie} -start_epmd false -kernel inet_dist_use_interface {{127,0,0,1}} \
-env ERL_CRASH_DUMP_BYTES 0"
"""
# inet_dist_use_interface instead of INET_DIST_INTERFACE: the latter makes every ejabberdctl call start one more
# Erlang VM just to parse the address. -start_epmd false: `_ensure_epmd` starts the one epmd, otherwise every
# Erlang VM (each ejabberdctl call) would try, leaving a zombie behind each time.

CONFIG = """\
hosts: ["{host}"]
loglevel: warning
log_rotate_count: 0
certfiles: ["{cert}", "{key}"]
# XEP-0077 from unauthenticated streams, as often as tests like (the default is one per address per 600 s).
registration_timeout: infinity
listen:
  - port: {c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    access: c2s
    starttls: true
    starttls_required: false
    max_stanza_size: 262144
  - port: {http_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /http-bind: mod_bosh
      /ws: ejabberd_http_ws
auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
  local:
    allow: local
  register:
    allow: all
  muc_create:
    allow: local
api_permissions:
  "console commands":
    from: [ejabberd_ctl]
    who: all
    what: "*"
shaper_rules:
  max_user_offline_messages: 100000
modules:
  mod_bosh: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_offline: {{}}
  mod_muc:
    access_create: muc_create
    history_size: 20
  mod_register:
    access: register
    ip_access: all
  mod_stream_mgmt:
    resume_timeout: {resume_timeout}
    max_ack_queue: 5000
"""


def _as_ejabberd() -> list[str]:
    """The command prefix that runs what follows as the ejabberd user (../shared/INTEROP.md: never as root)."""
    if os.geteuid() == 0:
        return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "env",
                f"HOME={pwd.getpwnam(USER).pw_dir}"]
    if pwd.getpwuid(os.geteuid()).pw_name == USER:
        return []
    raise RuntimeError("ejabberd tests must run as root or as the ejabberd user")


class EjabberdNode:
    """One ejabberd node. `start()` launches it, `wait_started()` waits until `ejabberdctl status` says it runs."""

    def __init__(self, *, host: str = "localhost", name: str | None = None, cookie: str | None = None,
                 resume_timeout_seconds: int = 300) -> None:
        self.host = host
        self.name = name or f"ejabberd-{secrets.token_hex(4)}@localhost"
        self.cookie = cookie or secrets.token_hex(16)
        self.c2s_port = free_port()
        self.http_port = free_port()
        # /tmp, not pytest's tmp_path: that is root's and mode 0700, which the ejabberd user cannot enter.
        self.directory = Path(tempfile.mkdtemp(prefix="boshcm-ejabberd-"))
        self.cert_path, key_path = ensure_self_signed(self.directory, host)
        (self.directory / "spool").mkdir()
        (self.directory / "logs").mkdir()
        shutil.copy("/etc/ejabberd/inetrc", self.directory / "inetrc")
        (self.directory / "ejabberdctl.cfg").write_text(
            CTL_CONFIG.format(name=self.name, dir=self.directory, cookie=self.cookie))
        (self.directory / "ejabberd.yml").write_text(CONFIG.format(
            host=host, cert=self.cert_path, key=key_path, c2s_port=self.c2s_port, http_port=self.http_port,
            resume_timeout=resume_timeout_seconds))
        if os.geteuid() == 0:
            account = pwd.getpwnam(USER)
            for path in (self.directory, *self.directory.rglob("*")):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bosh_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/http-bind"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/ws"

    @property
    def log_path(self) -> Path:
        return self.directory / "logs" / "ejabberd.log"

    @property
    def pid(self) -> int:
        """The Erlang VM's pid (for CPU and memory figures)."""
        found = self._beam_pid()
        assert found is not None, "ejabberd is not running"
        return found

    def _beam_pid(self) -> int | None:
        if self._process is None:
            return None
        found = subprocess.run(["pgrep", "-s", str(self._process.pid), "-x", "beam.smp"], capture_output=True,
                               text=True)
        return int(found.stdout.split()[0]) if found.stdout.strip() else None

    def _ctl_command(self, *args: str) -> list[str]:
        return [*_as_ejabberd(), EJABBERDCTL, "--config-dir", str(self.directory), "--spool",
                str(self.directory / "spool"), "--logs", str(self.directory / "logs"), "--node", self.name, *args]

    def ctl(self, *args: str, check: bool = True, timeout: float = 60.0) -> str:
        """Run one `ejabberdctl` command against this node; its output."""
        done = subprocess.run(self._ctl_command(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=self.directory)
        if check and done.returncode != 0:
            raise RuntimeError(f"ejabberdctl {' '.join(args)} on {self.name}: {done.returncode} "
                               f"{done.stdout.strip()} {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        _ensure_epmd()
        # A session of its own: stop() and kill() signal the whole group (bash, beam, its helpers), so nothing
        # is left behind; epmd daemonises out of it and is shared by every node, as usual.
        self._process = subprocess.Popen(self._ctl_command("foreground"), cwd=self.directory,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_started(self, timeout_seconds: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout_seconds
        # Cheap checks first (the listeners are up late in the start), then what ejabberdctl says.
        for port in (self.c2s_port, self.http_port):
            while not _listening(port):
                self._check_alive(deadline)
                time.sleep(0.1)
        while "is running in that node" not in self.ctl("status", check=False, timeout=30):
            self._check_alive(deadline)
            time.sleep(0.3)

    def wait_serving(self, timeout_seconds: float = START_TIMEOUT_SECONDS) -> None:
        """Until both listeners are up and c2s answers a stream header with its features: ejabberd serves. Cheaper
        than `wait_started` (no `ejabberdctl status`, which starts an Erlang VM of its own for each look)."""
        deadline = time.monotonic() + timeout_seconds
        for port in (self.c2s_port, self.http_port):
            while not _listening(port):
                self._check_alive(deadline)
                time.sleep(0.05)
        while not _offers_features(self.c2s_port, self.host):
            self._check_alive(deadline)
            time.sleep(0.05)

    def _check_alive(self, deadline: float) -> None:
        assert self._process is not None
        if self._process.poll() is not None or time.monotonic() > deadline:
            log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            self.kill()
            raise RuntimeError(f"ejabberd {self.name} did not start (see {self.directory}):\n{log}")

    def register(self, username: str, password: str) -> None:
        """An account via ejabberdctl (one Erlang VM per call, ~1 s: see `register_in_band` for many)."""
        self.ctl("register", username, self.host, password)

    def register_all(self, accounts: Mapping[str, str]) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda item: self.register(*item), accounts.items()))

    def _signal_beam(self, signum: int) -> None:
        # The VM first, so that its parent (ejabberdctl's bash) reaps it: signalled together, the VM would be
        # orphaned to an init that may never reap it and linger as a zombie.
        if (beam := self._beam_pid()) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(beam, signum)

    def stop(self, timeout_seconds: float = 15.0) -> None:
        """Stop the node (SIGTERM: the Erlang VM shuts down in order), and make sure nothing is left."""
        if self._process is None or self._process.poll() is not None:
            return self.kill()
        self._signal_beam(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout_seconds)
        self.kill()

    def kill(self) -> None:
        """End the node at once, as a crash would (its cluster peer sees it vanish)."""
        if self._process is None:
            return
        self._signal_beam(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)  # whatever is left of the group (helpers)
        self._process.wait()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EjabberdNode:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        self.remove()


def _ensure_epmd() -> None:
    """The Erlang port mapper, which nodes and ejabberdctl use to find each other (one per machine)."""
    subprocess.run([*_as_ejabberd(), "env", "ERL_EPMD_ADDRESS=127.0.0.1", shutil.which("epmd") or "/usr/bin/epmd",
                    "-daemon"], check=True, timeout=10)


def _offers_features(port: int, host: str) -> bool:
    """Whether c2s on `port` answers a stream header with <stream:features> (RFC 6120 §4.3.2) within 2 s."""
    with socket.socket() as probe:
        probe.settimeout(2)
        try:
            probe.connect(("127.0.0.1", port))
            probe.sendall(f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream="
                          f"'http://etherx.jabber.org/streams' to='{host}' version='1.0'>".encode())
            received = b""
            while b"</stream:features>" not in received:
                data = probe.recv(65_536)
                if not data:
                    return False
                received += data
            probe.sendall(b"</stream:stream>")
            return True
        except OSError:
            return False


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def ejabberd_node(accounts: Mapping[str, str] = {}, *, host: str = "localhost",
                  resume_timeout_seconds: int = 300) -> Iterator[EjabberdNode]:
    """One running node with `accounts` registered; stopped and removed on exit."""
    with EjabberdNode(host=host, resume_timeout_seconds=resume_timeout_seconds) as node:
        node.start()
        node.wait_started()
        node.register_all(accounts)
        yield node


def cluster_members(node: EjabberdNode) -> set[str]:
    """The node names `list_cluster` prints, as seen from `node`."""
    return {line.strip().strip("'") for line in node.ctl("list_cluster").split() if "@" in line}


@contextlib.contextmanager
def ejabberd_cluster(accounts: Mapping[str, str] = {}, *, size: int = 2, host: str = "localhost",
                     resume_timeout_seconds: int = 300) -> Iterator[tuple[EjabberdNode, ...]]:
    """`size` nodes (same cookie, own names, ports and directories) started in parallel, each later one joined
    to the first; `accounts` registered once (Mnesia shares them). Yields the nodes, the first is the seed."""
    cluster = EjabberdCluster(accounts, size=size, host=host, resume_timeout_seconds=resume_timeout_seconds)
    try:
        cluster.start()
        yield cluster.nodes
    finally:
        cluster.stop()


class EjabberdCluster:
    """What `ejabberd_cluster` runs, in steps: the nodes (ports and directories) are known when it is made, so a
    test can start other things on them while `start()` runs (in a thread)."""

    def __init__(self, accounts: Mapping[str, str] = {}, *, size: int = 2, host: str = "localhost",
                 resume_timeout_seconds: int = 300) -> None:
        cookie = secrets.token_hex(16)
        self.accounts = dict(accounts)
        self.nodes = tuple(EjabberdNode(host=host, cookie=cookie, resume_timeout_seconds=resume_timeout_seconds)
                           for _ in range(size))

    def start(self) -> None:
        """Start every node, join each later one to the first, check `list_cluster`, register the accounts."""
        for node in self.nodes:
            node.start()
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda node: node.wait_serving(), self.nodes))
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            # join_cluster restarts ejabberd on the joining node with the seed's Mnesia tables, and returns when
            # it runs again.
            node.ctl("join_cluster", seed.name, timeout=120)
            node.wait_serving()
        members = cluster_members(seed)
        if members != {node.name for node in self.nodes}:
            raise RuntimeError(f"list_cluster on {seed.name} shows {members}")
        # XEP-0077 over c2s rather than one `ejabberdctl register` (an Erlang VM, ~1 s) per account; in a thread,
        # so that this works whether or not the caller's thread runs an event loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, register_in_band(seed, self.accounts)).result()

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda node: node.stop(), self.nodes))
        for node in self.nodes:
            node.remove()


async def register_in_band(node: EjabberdNode, accounts: Mapping[str, str], *, concurrency: int = 20) -> None:
    """Register many accounts quickly: XEP-0077 in-band registration over plain c2s, `concurrency` at once.
    An account that already exists (conflict) counts as registered."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(username: str, password: str) -> None:
        async with semaphore:
            await _register_one(node, username, password)

    await asyncio.gather(*(one(username, password) for username, password in accounts.items()))


async def _register_one(node: EjabberdNode, username: str, password: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.c2s_port)
    try:
        parser = etree.XMLPullParser(events=("end",), resolve_entities=False, no_network=True)
        writer.write(f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     f"xmlns:stream='http://etherx.jabber.org/streams' to='{node.host}' version='1.0'>".encode())
        await _next_top_level(reader, parser, "features")
        writer.write(f"<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{username}</username>"
                     f"<password>{password}</password></query></iq>".encode())
        answer = await _next_top_level(reader, parser, "iq")
        if answer.get("type") != "result" and answer.find(".//{*}conflict") is None:
            raise RuntimeError(f"in-band registration of {username}: {etree.tostring(answer).decode()}")
        writer.write(b"</stream:stream>")
    finally:
        writer.close()


async def _next_top_level(reader: asyncio.StreamReader, parser: etree.XMLPullParser,
                          local_name: str) -> etree._Element:
    async with asyncio.timeout(10):
        while True:
            for event, element in parser.read_events():
                parent = element.getparent()
                top_level = parent is not None and parent.getparent() is None  # a child of <stream:stream>
                if event == "end" and top_level and etree.QName(element).localname == local_name:
                    return element
            data = await reader.read(65_536)
            if not data:
                raise ConnectionError("ejabberd closed the stream")
            parser.feed(data)
