"""Measure what hostile REST bodies cost a server started with `mlipserve serve --auth`.

Run: `.venv/bin/python -m tests.server.rest.measure_hostile [--upload-mb 300] [--body-mb 400]`
(not a test: it prints one JSON object). Cases: an upload without a key (seconds to the 401,
bytes the client had sent by then, gRPC p50 while it runs), and an oversized msgpack evaluate
body with a user key, sent with a Content-Length and chunked (status, seconds, growth of the
server's peak RSS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import msgpack
from ase.build import bulk

from mlipserve.client import Client
from mlipserve.server.auth import KeyStore

MB = 1 << 20


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        line = next(l for l in fh if l.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def unauthenticated_upload(port: int, size: int) -> dict:
    """Send a multipart upload of `size` bytes without a key on a raw socket; time the answer."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="artifact"; '
        f'filename="m.safetensors"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{{}}'
        f"\r\n--{boundary}--\r\n".encode()
    )
    total = len(head) + size + len(tail)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        (
            f"POST /v1/models/cu/versions HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
        ).encode()
    )
    sent, answer, start = [0], {}, time.perf_counter()

    def read():
        data = sock.recv(4096)
        answer["s"] = time.perf_counter() - start
        answer["sent"] = sent[0]
        answer["status"] = data.split(b"\r\n", 1)[0].decode(errors="replace")

    reader = threading.Thread(target=read)
    reader.start()
    chunk = b"\0" * MB
    try:
        sock.sendall(head)
        while sent[0] < size and "s" not in answer:
            sock.sendall(chunk[: min(MB, size - sent[0])])
            sent[0] += min(MB, size - sent[0])
        if "s" not in answer:
            sock.sendall(tail)
            sent[0] = total
    except OSError:
        pass  # the server closed the connection after answering
    reader.join(120)
    sock.close()
    return {
        "status": answer.get("status"),
        "seconds_to_answer": round(answer.get("s", -1), 3),
        "mb_sent_when_answered": round(answer.get("sent", 0) / MB, 1),
        "mb_of_body": round(total / MB, 1),
    }


def grpc_p50_ms(address: str, stop: threading.Event, out: list) -> None:
    """Small gRPC evaluations until `stop`; their latencies (ms) go to `out`."""
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True)
    with Client(address, "lj", api_key=os.environ["_KEY"]) as client:
        while not stop.is_set():
            t = time.perf_counter()
            client.evaluate(atoms)
            out.append((time.perf_counter() - t) * 1e3)


def oversized_evaluate(rest: str, key: str, pid: int, size: int, chunked: bool) -> dict:
    """A msgpack evaluate body of `size` bytes with a user key; status, time, peak-RSS growth."""
    n = size // 24
    body = msgpack.packb(
        {
            "systems": [
                {
                    "positions": {"dtype": "<f8", "shape": [n, 3], "data": bytes(24 * n)},
                    "numbers": [18] * 1,
                }
            ],
            "properties": ["energy"],
        }
    )
    before = peak_rss_mb(pid)
    content = (body[i : i + MB] for i in range(0, len(body), MB)) if chunked else body
    start = time.perf_counter()
    try:
        reply = httpx.post(
            f"{rest}/v1/models/lj/evaluate",
            content=content,
            timeout=300,
            headers={"content-type": "application/msgpack", "authorization": f"Bearer {key}"},
        )
        status = reply.status_code
        detail = reply.text[:120]
    except httpx.HTTPError as err:
        status, detail = None, f"{type(err).__name__}: {err}"
    return {
        "status": status,
        "detail": detail,
        "seconds": round(time.perf_counter() - start, 3),
        "peak_rss_growth_mb": round(peak_rss_mb(pid) - before, 1),
        "mb_of_body": round(len(body) / MB, 1),
    }


@contextlib.contextmanager
def served(data: str):
    """`mlipserve serve --auth` on free ports over the key database in `data`."""
    port, rest_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlipserve.cli",
            "serve",
            "--auth",
            "--models",
            "lj",
            "--data-dir",
            data,
            "--port",
            str(port),
            "--rest-port",
            str(rest_port),
            "--workers",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rest = f"http://127.0.0.1:{rest_port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{rest}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield port, rest_port, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    """Start a server with auth per case, run the cases, print the figures as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--upload-mb", type=int, default=300)
    parser.add_argument("--body-mb", type=int, default=400)
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="mlipserve-hostile-")
    _, key = KeyStore(f"sqlite:///{data}/mlipserve.db").create("user", "lab")
    os.environ["_KEY"] = key
    out = {}
    with served(data) as (port, rest_port, _):
        idle, busy, stop = [], [], threading.Event()
        worker = threading.Thread(target=grpc_p50_ms, args=(f"127.0.0.1:{port}", stop, idle))
        worker.start()
        time.sleep(2)
        stop.set()
        worker.join()
        stop.clear()
        worker = threading.Thread(target=grpc_p50_ms, args=(f"127.0.0.1:{port}", stop, busy))
        worker.start()
        upload = unauthenticated_upload(rest_port, args.upload_mb * MB)
        stop.set()
        worker.join()
        upload["grpc_p50_ms_idle"] = round(statistics.median(idle), 2)
        upload["grpc_p50_ms_during_upload"] = round(statistics.median(busy), 2) if busy else None
        out["upload_without_key"] = upload
    for case, chunked in (("evaluate_content_length", False), ("evaluate_chunked", True)):
        with served(data) as (_, rest_port, pid):
            out[case] = oversized_evaluate(
                f"http://127.0.0.1:{rest_port}", key, pid, args.body_mb * MB, chunked
            )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
