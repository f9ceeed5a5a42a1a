"""LitServe with a model that does nothing: what the framework alone costs on this machine.

`python benchmarks/litserve_trivial.py PORT WORKERS` serves `POST /predict` and `POST /batch-predict` (any
JSON in, a fixed probability out) laid out as our server is: two APIs, WORKERS inference processes each on
CPU, LitServe's default number of API-server processes (one per inference worker), log level warning;
ready on `GET /health`. Our server's latency minus this one's minus the floor is roughly what our own code
adds per request beyond the model (request validation, metrics, prediction log, response model).
"""

import sys
from typing import Any

import litserve as ls


class TrivialAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.answer = {"churn_probability": 0.5}

    # Unannotated on purpose: LitServe reads this annotation as the request schema; none = JSON as parsed.
    def decode_request(self, request) -> Any:  # type: ignore[no-untyped-def]
        return request

    def predict(self, record: Any) -> dict[str, Any]:
        return self.answer

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    server = ls.LitServer(
        [TrivialAPI(api_path="/predict"), TrivialAPI(api_path="/batch-predict")],
        accelerator="cpu",
        workers_per_device=workers,
        timeout=30,
    )
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
