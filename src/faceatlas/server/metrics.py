"""Prometheus metrics of one app: requests, latency, faces analysed, model load, waiting requests.

Each app has its own registry (tests build many apps in one process). Routes are labelled by their
template (``/v1/people/{name}``), never the raw path, so the label set stays bounded.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faceatlas_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "faceatlas_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.faces = Counter("faceatlas_faces_analysed_total", "faces detected and embedded", registry=self.registry)
        self.model_load = Gauge(
            "faceatlas_model_load_seconds", "seconds the models took to load (0 = not loaded)", registry=self.registry
        )
        self.waiting = Gauge(
            "faceatlas_requests_waiting", "image requests waiting for an analysis slot", registry=self.registry
        )
        self.refused = Counter(
            "faceatlas_requests_refused_total",
            "requests refused (overload, rate limit)",
            ["reason"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self, engine: Any) -> bytes:
        self.waiting.set(engine.waiting)
        return generate_latest(self.registry)
