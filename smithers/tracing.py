"""Optional OpenTelemetry spans (the `otel` extra), off unless asked for.

With `SMITHERS_OTEL_ENABLED=1` and `OTEL_EXPORTER_OTLP_ENDPOINT` set, and the extra
installed, spans go to OTLP over HTTP; otherwise every span is a no-op that costs one
attribute lookup.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any, cast

logger = logging.getLogger("smithers.tracing")


def enabled() -> bool:
    flag = os.environ.get("SMITHERS_OTEL_ENABLED", "").lower() in ("1", "true", "yes")
    return flag and bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


@cache
def _tracer() -> Any:
    if not enabled():
        return None
    try:
        import opentelemetry.trace as trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning("SMITHERS_OTEL_ENABLED is set but the `otel` extra is not installed")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "smithers"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return trace.get_tracer("smithers")


_NO_SPAN = nullcontext()


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    tracer = _tracer()
    if tracer is None:
        return _NO_SPAN  # every request opens one: no generator to build and drive
    return cast(
        AbstractContextManager[Any], tracer.start_as_current_span(name, attributes=attributes)
    )
