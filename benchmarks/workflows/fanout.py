"""The run benchmarks/bench_fanout.py streams: the Gateway benchmarks' `chatty` workflow
(benchmarks/workflows/gateway_app.py) served by `smithers server` from this file."""

from gateway_app import chatty as workflow

__all__ = ["workflow"]
