"""Load test of `faceatlas serve` from a second process, on loopback only, bounded in time.

    python benchmarks/service_load.py                     # 60 s per phase
    python benchmarks/service_load.py --seconds 20 --concurrency 4

Starts the service as a subprocess (SQLite in a temporary data dir, CPU, API keys on), enrols
two people, then drives it with an asyncio httpx client:

1. **analyze** for ``--seconds`` at ``--concurrency`` requests in flight (Grace Hopper and the
   astronaut, alternating);
2. **identify** likewise, three times in a row, so RSS minute by minute shows whether memory
   grows with traffic;
3. **overload**: ``--flood`` requests in flight against ``FACEATLAS_MAX_WAITING``: the excess
   must be refused with 503 + Retry-After at once, never queued until memory runs out;
4. **identify** once more, after the overload.

Prints a Markdown table: requests, throughput, p50/p99 latency, status codes, and the server's
RSS before and after each phase (VmRSS from /proc). Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine

COMMAND = "python benchmarks/service_load.py " + shlex.join(sys.argv[1:])


def jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def images() -> dict[str, bytes]:
    import matplotlib.cbook
    from skimage import data

    from faceatlas.image import load_image

    hopper = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    astronaut = data.astronaut()
    return {
        "hopper": jpeg(hopper),
        "hopper_mirrored": jpeg(np.ascontiguousarray(hopper[:, ::-1])),
        "astronaut": jpeg(astronaut),
        "astronaut_mirrored": jpeg(np.ascontiguousarray(astronaut[:, ::-1])),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(client, url: str, files_for, seconds: float, concurrency: int, key: str) -> dict:
    """``concurrency`` workers posting until ``seconds`` have passed; latencies and statuses."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    retry_after: Counter = Counter()
    deadline = time.perf_counter() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            started = time.perf_counter()
            try:
                response = await client.post(url, files=files_for(counter), headers={"X-API-Key": key})
                statuses[response.status_code] += 1
                if response.status_code == 503:
                    retry_after[response.headers.get("retry-after")] += 1
            except Exception as exc:  # noqa: BLE001 -- a transport failure is a result to report
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = latencies  # 503s included: under overload they must be fast refusals
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "statuses": dict(statuses),
        "retry_after": dict(retry_after),
        "p50": float(np.percentile(ok, 50)) * 1000 if ok else float("nan"),
        "p99": float(np.percentile(ok, 99)) * 1000 if ok else float("nan"),
    }


async def run_phases(base: str, key: str, pictures: dict[str, bytes], args, pid: int) -> list[tuple[str, dict]]:
    import httpx

    names = ["hopper_mirrored", "astronaut_mirrored"]

    def upload(counter: int) -> dict:
        return {"image": ("probe.jpg", pictures[names[counter % 2]], "image/jpeg")}

    limits = httpx.Limits(max_connections=args.flood + 8)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        for person, picture in (("Grace Hopper", "hopper"), ("Eileen Collins", "astronaut")):
            response = await client.post(
                f"/v1/people/{person}/faces",
                files={"images": ("p.jpg", pictures[picture], "image/jpeg")},
                headers={"X-API-Key": key},
            )
            response.raise_for_status()
        # warm up: the first request loads nothing (models are loaded at start) but fills caches
        await drive(client, "/v1/analyze", upload, 3, 1, key)
        phases = []
        for name, url, concurrency in (
            ("analyze", "/v1/analyze", args.concurrency),
            ("identify, 1st minute", "/v1/identify", args.concurrency),
            ("identify, 2nd minute", "/v1/identify", args.concurrency),
            ("identify, 3rd minute", "/v1/identify", args.concurrency),
            (f"overload: {args.flood} in flight", "/v1/identify", args.flood),
            ("identify, after the overload", "/v1/identify", args.concurrency),
        ):
            before = rss_mb(pid)
            result = await drive(client, url, upload, args.seconds, concurrency, key)
            result["rss_before"], result["rss_after"] = before, rss_mb(pid)
            result["concurrency"] = concurrency
            phases.append((name, result))
            print(f"  {name}: {result}", file=sys.stderr, flush=True)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--flood", type=int, default=48)
    parser.add_argument("--max-waiting", type=int, default=8)
    parser.add_argument("--analysis-threads", type=int, default=2)
    args = parser.parse_args()
    pictures = images()
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "FACEATLAS_DATA_DIR": data_dir,
            "FACEATLAS_MAX_WAITING": str(args.max_waiting),
            "FACEATLAS_ANALYSIS_THREADS": str(args.analysis_threads),
            "FACEATLAS_RATE_LIMIT_PER_MINUTE": "0",
        }
        created = subprocess.run(
            ["faceatlas", "keys", "create", "load test", "--scope", "admin"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = created.stdout.strip()
        server = subprocess.Popen(
            ["faceatlas", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            started = time.perf_counter()
            import httpx

            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited: {server.stderr.read()}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > 120:
                    raise SystemExit("the server did not become ready in 120 s")
                time.sleep(0.5)
            ready_s = time.perf_counter() - started
            rss_start = rss_mb(server.pid)
            phases = asyncio.run(run_phases(base, key, pictures, args, server.pid))
            metrics = httpx.get(f"{base}/metrics", headers={"X-API-Key": key}).text
        finally:
            server.terminate()
            server.wait(30)
    refused = [line for line in metrics.splitlines() if line.startswith("faceatlas_requests_refused_total")]
    out = [
        f"Machine: {machine()}",
        f"Command: `{COMMAND.strip()}`",
        (
            f"Server: `faceatlas serve` (uvicorn, 1 process), FACEATLAS_ANALYSIS_THREADS={args.analysis_threads}, "
            f"FACEATLAS_MAX_WAITING={args.max_waiting}; ready in {ready_s:.1f} s (models loaded at start), "
            f"RSS {rss_start:.0f} MB when ready; load average {os.getloadavg()[0]:.2f} at the end"
        ),
        "",
        "| phase | in flight | requests | req/s | p50 ms | p99 ms | status codes | RSS before → after MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in phases:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items(), key=str))
        out.append(
            f"| {name} | {r['concurrency']} | {r['requests']} | {r['requests'] / r['seconds']:.1f} | "
            f"{r['p50']:.0f} | {r['p99']:.0f} | {codes} | {r['rss_before']:.0f} → {r['rss_after']:.0f} |"
        )
    out += ["", "Refused by the server (its own counters): " + "; ".join(refused)]
    five_hundreds = sum(
        v for _, r in phases for k, v in r["statuses"].items() if isinstance(k, int) and k >= 500 and k != 503
    )
    out.append(f"5xx other than the deliberate 503: {five_hundreds}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
