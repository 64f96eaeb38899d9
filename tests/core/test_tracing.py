"""Tracing is off unless both the flag and an endpoint are set."""

from __future__ import annotations

import pytest

from smithers import tracing


def test_spans_are_no_ops_unless_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMITHERS_OTEL_ENABLED", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert not tracing.enabled()
    monkeypatch.setenv("SMITHERS_OTEL_ENABLED", "1")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.enabled()
    tracing._tracer.cache_clear()
    try:
        monkeypatch.delenv("SMITHERS_OTEL_ENABLED")
        with tracing.span("x", a=1):
            pass
        assert tracing._tracer() is None
    finally:
        tracing._tracer.cache_clear()
