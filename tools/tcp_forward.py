"""Forward a loopback TCP port to a libvirtd UNIX socket, for root clients only.

Peer-to-peer live migration needs every node reachable by URI from the other node's
libvirtd. The first node is the system daemon, which may already be running without a TCP
listener (and which tests must never restart), so instead of `--listen` it gets this
forwarder: `qemu+tcp://127.0.0.1:PORT/system` reaches `/run/libvirt/libvirt-sock`.

The UNIX socket only lets root manage domains; to keep that boundary, a TCP client is
served only when /proc/net/tcp says its socket belongs to uid 0. Test and demo tooling
(started by libvirt_daemon.listen_tcp), not product code:

    python tools/tcp_forward.py --port 16509 --socket /run/libvirt/libvirt-sock
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

LOOPBACK = "127.0.0.1"
CHUNK = 1 << 16


def _hex_endpoint(host: str, port: int) -> str:
    """An IPv4 endpoint the way /proc/net/tcp spells it (address in host byte order)."""
    packed = socket.inet_aton(host)
    return f"{int.from_bytes(packed, sys.byteorder):08X}:{port:04X}"


def peer_uid(peer: tuple[str, int], local: tuple[str, int], table: str = "/proc/net/tcp") -> int | None:
    """The uid owning the client end of a loopback connection (None when not found).

    The client's own socket is the row whose local end is our peer and whose remote end
    is us."""
    want = (_hex_endpoint(*peer), _hex_endpoint(*local))
    with contextlib.suppress(OSError):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) > 7 and (cols[1], cols[2]) == want:
                return int(cols[7])
    return None


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            dst.close()


async def _handle(socket_path: str, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")[:2]
    local = writer.get_extra_info("sockname")[:2]
    if peer_uid(peer, local) != 0:
        writer.close()
        return
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def serve(port: int, socket_path: str, ready: Path | None = None) -> None:
    server = await asyncio.start_server(
        lambda r, w: _handle(socket_path, r, w), LOOPBACK, port, reuse_address=True
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if ready is not None:
        ready.write_text(f"{os.getpid()}\n")
    try:
        async with server:
            await stop.wait()
    finally:
        if ready is not None:
            ready.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/tcp_forward.py", description=__doc__,
                                     allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--socket", required=True, help="the libvirtd UNIX socket")
    parser.add_argument("--pid-file", type=Path, help="written once listening")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.socket, args.pid_file))
    except OSError as exc:
        print(f"tcp_forward: cannot listen on {LOOPBACK}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
