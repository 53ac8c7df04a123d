"""The client's transport (httpx2's pool over asyncio streams) keeps the behaviour the retry rules rely on:
a keep-alive connection the server closed is not reused, a silent server is a read timeout, a closed port a
connect error, and a large answer arrives whole."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx2
import pytest

from core.llm.transport import AsyncioTransport

LIMITS = httpx2.Limits(max_connections=4, max_keepalive_connections=4)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _answer(body: bytes, *, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
    return (head + ("connection: close\r\n" if close else "") + "\r\n").encode() + body


async def _read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def _with_server(handler: Handler, client_part: Callable[[str], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await client_part(f"http://127.0.0.1:{port}")
    finally:
        server.close()


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await _read_request(reader)
        writer.write(_answer(b"one"))
        await writer.drain()
        writer.close()  # keep-alive was offered, but the server hangs up once idle

    async def client_part(url: str) -> None:
        async with httpx2.AsyncClient(transport=AsyncioTransport(limits=LIMITS)) as client:
            first = await client.get(url)
            await asyncio.sleep(0.1)  # the close reaches the idle connection
            second = await client.get(url)
        assert (first.text, second.text) == ("one", "one")

    asyncio.run(_with_server(handler, client_part))
    assert len(connections) == 2


def test_keep_alive_reuses_one_connection_and_large_answers_arrive_whole() -> None:
    connections: list[int] = []
    body = bytes(range(256)) * 4096  # 1 MiB: more than the buffer holds before reading pauses

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        for _ in range(3):
            await _read_request(reader)
            writer.write(_answer(body))
            await writer.drain()
        writer.close()

    async def client_part(url: str) -> None:
        async with httpx2.AsyncClient(transport=AsyncioTransport(limits=LIMITS)) as client:
            for _ in range(3):
                assert (await client.get(url)).content == body

    asyncio.run(_with_server(handler, client_part))
    assert len(connections) == 1


def test_a_silent_server_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(2)

    async def client_part(url: str) -> None:
        async with httpx2.AsyncClient(transport=AsyncioTransport(limits=LIMITS), timeout=0.2) as client:
            with pytest.raises(httpx2.ReadTimeout):
                await client.get(url)

    asyncio.run(_with_server(handler, client_part))


def test_a_closed_port_is_a_connect_error() -> None:
    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with httpx2.AsyncClient(transport=AsyncioTransport(limits=LIMITS)) as client:
            with pytest.raises(httpx2.ConnectError):
                await client.get(f"http://127.0.0.1:{port}")

    asyncio.run(go())


def test_a_server_that_hangs_up_mid_answer_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_answer(b"x" * 100)[:-50])
        await writer.drain()
        writer.close()

    async def client_part(url: str) -> None:
        async with httpx2.AsyncClient(transport=AsyncioTransport(limits=LIMITS)) as client:
            with pytest.raises(httpx2.RemoteProtocolError):
                await client.get(url)

    asyncio.run(_with_server(handler, client_part))
