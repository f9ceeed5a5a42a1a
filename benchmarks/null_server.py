"""A do-nothing HTTP/1.1 server: the load generator's ceiling on this machine.

`python benchmarks/null_server.py PORT` answers every request (any method and path, keep-alive) with
a fixed ~150-byte JSON prediction, without parsing it. Pointing the load generator at it measures what
the client and the loopback cost by themselves. Single process, one event loop (uvloop when importable).
"""

from __future__ import annotations

import asyncio
import sys

BODY = (
    b'{"customerID": "7590-VHVEG", "churn_probability": 0.5, "churn": true, "risk_band": "high", '
    b'"model_version": "0", "request_id": "00000000000000000000000000000000"}'
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class NullProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.WriteTransport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self.transport.write(RESPONSE)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(NullProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
