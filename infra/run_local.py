"""``make run``: the whole stack on 127.0.0.1 with moto as the embedded AWS.

Buckets, queues, table and user pool are created from ``template.yaml``; the real API and
inference handlers run in this process; the static site, the HTTP API and the S3 upload
endpoint are served by :class:`infra.gateway.Gateway`.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from dataclasses import dataclass

from infra.template import ROOT, Stack

WEB_DIR = ROOT / "web"


@dataclass
class LocalStack:
    """A running local stack; use as a context manager (tests) or call :meth:`serve_forever`."""

    host: str = "127.0.0.1"
    port: int = 8000
    write_config: bool = False
    parameters: dict | None = None

    def __enter__(self) -> "LocalStack":
        from moto import mock_aws
        from werkzeug.serving import make_server

        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            os.environ.setdefault(key, value)
        self._mock = mock_aws()
        self._mock.start()
        from infra.gateway import Gateway
        from infra.lambda_context import load_handler
        from infra.local_stack import provision
        from infra.worker import QueueWorker

        from infra.build_web import build_web_assets

        build_web_assets(WEB_DIR)  # plotly.js from the installed package: no CDN
        self.resources = provision(Stack.load(**(self.parameters or {})))
        os.environ.update(self.resources.environment())
        # Handlers read config, create clients and load the model at import: once per "container".
        self.api, api_handler = load_handler(self.resources.stack, "ApiFunction")
        self.inference, inference_handler = load_handler(self.resources.stack, "InferenceFunction")
        self.dead_letter, dead_letter_handler = load_handler(self.resources.stack, "DeadLetterFunction")
        self.gateway = Gateway(self.resources, api_handler, WEB_DIR)
        self.server = make_server(self.host, self.port, self.gateway, threaded=True)
        self.port = self.server.server_port
        self.gateway.base_url = self.url
        if self.write_config:
            (WEB_DIR / "config.json").write_text(json.dumps(self.gateway.site_config(), indent=2) + "\n")
        from infra.faults import install_from_env

        # STROKELENS_FAULTS="crash=0.3@1,throttle=0.1" make run: see the service cope (infra/faults.py).
        self.faults = install_from_env(inference=self.inference, dead_letter=self.dead_letter)
        self.worker = QueueWorker(self.resources.stack, self.resources.queue_url, inference_handler).start()
        self.dead_letter_worker = QueueWorker(self.resources.stack, self.resources.dlq_url, dead_letter_handler,
                                              function="DeadLetterFunction", queue="ScanDeadLetterQueue").start()
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.worker.stop()
        self.dead_letter_worker.stop()
        if self.faults is not None:
            self.faults.uninstall()
        self._mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run StrokeLens locally (moto as AWS).")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    args = parser.parse_args()
    with LocalStack(port=args.port, write_config=True) as stack:
        users = ", ".join(c["username"] for c in stack.resources.clinicians)
        print(f"\nStrokeLens is running at {stack.url}/  (local clinicians: {users})", flush=True)
        if stack.faults is not None:
            print(f"Injecting faults (STROKELENS_FAULTS={os.environ['STROKELENS_FAULTS']})", flush=True)
        print("Research tool, not a medical device. Press Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nStopping.")


if __name__ == "__main__":
    main()
