"""The floor of the stack: a Python gRPC forwarder that relays request bytes untouched.

It receives ``LogsService/Export`` with the same gRPC server settings as
falco-risk's receiver (sync server, a thread pool of the same size, the same
message limits) and forwards the raw bytes with the same client settings as
falco-risk's forwarder, answering with the next hop's answer. Nothing is
decoded: whatever falco-risk costs beyond this is the price of tagging. It
also tunes the allocator as falco-risk does (falco_risk.allocator).

Run: ``python -m bench.floor --listen HOST:PORT --forward HOST:PORT [--aio]``

``--aio`` serves and forwards with grpc.aio on one event loop instead, to
compare the two server models at the same job.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from concurrent import futures

import grpc

from falco_risk.allocator import keep_large_buffers

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
# falco-risk's defaults: max_in_flight 64 plus 8 spare workers, 64 MiB
# requests in, 4 MiB pieces out (the channel allows twice that).
WORKERS = 64 + 8
MAX_REQUEST_SIZE = 64 << 20
MAX_SEND_SIZE = 8 << 20


def build_server(listen: str, forward: str) -> tuple[grpc.Server, grpc.Channel]:
    """The relay server and its channel to the next hop; not yet started."""
    channel = grpc.insecure_channel(
        forward,
        options=[
            ("grpc.max_send_message_length", MAX_SEND_SIZE),
            ("grpc.max_receive_message_length", 16 << 20),
        ],
    )
    send = channel.unary_unary(f"/{SERVICE}/Export")

    def export(raw: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            response: bytes = send(raw, timeout=context.time_remaining())
        except grpc.RpcError as error:
            context.abort(error.code(), error.details() or "")
        return response

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_SIZE),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
            ),
        )
    )
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"cannot listen on {listen}")
    return server, channel


async def serve_aio(listen: str, forward: str) -> None:
    """The same relay on grpc.aio: one thread, one event loop; runs until SIGTERM."""
    channel = grpc.aio.insecure_channel(
        forward,
        options=[
            ("grpc.max_send_message_length", MAX_SEND_SIZE),
            ("grpc.max_receive_message_length", 16 << 20),
        ],
    )
    send = channel.unary_unary(f"/{SERVICE}/Export")

    async def export(raw: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        try:
            response: bytes = await send(raw, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")
        return response

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_SIZE),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=WORKERS,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
            ),
        )
    )
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await server.stop(1)
    await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    parser.add_argument("--forward", required=True, metavar="HOST:PORT")
    parser.add_argument("--aio", action="store_true", help="grpc.aio instead of the sync server")
    args = parser.parse_args()

    # The same process setting falco-risk makes at start-up (see its module).
    keep_large_buffers()
    if args.aio:
        asyncio.run(serve_aio(args.listen, args.forward))
        return
    server, channel = build_server(args.listen, args.forward)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait(2)
    channel.close()


if __name__ == "__main__":
    main()
