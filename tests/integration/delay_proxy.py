#!/usr/bin/env python3
"""A TCP relay that delays every chunk by a fixed time, in both directions.

Used by net_faults.sh to put a 100 ms one-way delay on an agent's link: this machine's kernel has
no netem qdisc (nor prio/ingress to build one from), so the delay is emulated in user space. The
relay runs next to the agent (in its network namespace); the agent connects to the relay on
loopback, the relay connects to the hub across the (lossy, cuttable) veth link.

Semantics: every chunk read from one side is written to the other side `delay` seconds after it
was read, in order; the delay is a latency, not a bandwidth limit (chunks read 1 ms apart leave
1 ms apart). End of stream or an error on either side closes both sides of that pair once what
was read before it has been delivered. Memory is bounded: at most QUEUE_CHUNKS chunks of at most
CHUNK_BYTES are held per direction; a full queue stops reading (TCP back-pressure).

Lifetime: the relay exits on SIGTERM/SIGINT/SIGHUP and when its parent process dies
(PR_SET_PDEATHSIG, plus a poll of the parent pid in case the parent died before the prctl), so a
test that is killed never leaves it behind. It is Python 3 standard library only.

Usage: delay_proxy.py --listen HOST:PORT --target HOST:PORT [--delay SECONDS] [--ready-file F]
PORT 0 for --listen picks a free port; the bound HOST:PORT is written to --ready-file (atomically)
once the relay accepts connections.
"""

import argparse
import asyncio
import ctypes
import os
import signal
import socket
import sys

CHUNK_BYTES = 65536
QUEUE_CHUNKS = 256  # at most 16 MiB held per direction
CONNECT_TIMEOUT = 5.0  # seconds; a cut link must not keep a client waiting for ever
_EOF = object()


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: port {port!r} is not a number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: port {number} out of range")
    return host, number


def die_with_parent(parent):
    """Ask the kernel for SIGTERM when the parent exits (Linux); harmless elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    # The parent may have died before the prctl: then we were re-parented already.
    if os.getppid() != parent:
        sys.exit(0)


def nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


async def pump(reader, writer, delay):
    """Copies reader -> writer, each chunk `delay` s after it was read; returns at EOF/error."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(maxsize=QUEUE_CHUNKS)

    async def read_side():
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                await queue.put((loop.time() + delay, data if data else _EOF))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((loop.time() + delay, _EOF))

    reading = asyncio.ensure_future(read_side())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is _EOF:
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        reading.cancel()


async def close(writer):
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def handle(client_reader, client_writer, target, delay):
    try:
        upstream_reader, upstream_writer = await asyncio.wait_for(
            asyncio.open_connection(*target), CONNECT_TIMEOUT)
    except (ConnectionError, OSError, asyncio.TimeoutError):
        await close(client_writer)
        return
    nodelay(client_writer)
    nodelay(upstream_writer)
    directions = [
        asyncio.ensure_future(pump(client_reader, upstream_writer, delay)),
        asyncio.ensure_future(pump(upstream_reader, client_writer, delay)),
    ]
    try:
        # Either direction ending ends the pair: the relay does not model half-closed streams.
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in directions:
            task.cancel()
        await asyncio.gather(*directions, return_exceptions=True)
        await close(upstream_writer)
        await close(client_writer)


async def main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    die_with_parent(parent)

    async def watch_parent():
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        stop.set()

    pairs = set()

    def on_client(reader, writer):
        task = asyncio.ensure_future(handle(reader, writer, args.target, args.delay))
        pairs.add(task)
        task.add_done_callback(pairs.discard)

    server = await asyncio.start_server(on_client, *args.listen, reuse_address=True)
    host, port = server.sockets[0].getsockname()[:2]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{host}:{port}\n")
        os.replace(tmp, args.ready_file)
    watcher = asyncio.ensure_future(watch_parent())
    await stop.wait()
    watcher.cancel()
    server.close()
    for task in list(pairs):
        task.cancel()
    await asyncio.gather(*pairs, watcher, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=host_port, required=True, help="HOST:PORT (0 = any)")
    parser.add_argument("--target", type=host_port, required=True, help="HOST:PORT to relay to")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds (default 0.1)")
    parser.add_argument("--ready-file", help="write the bound HOST:PORT here when listening")
    arguments = parser.parse_args()
    if not 0 <= arguments.delay <= 60:
        parser.error(f"--delay {arguments.delay}: expected 0..60 seconds")
    asyncio.run(main(arguments))
