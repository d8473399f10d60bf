"""What operators watch a running node through: ``/metrics``, ``/healthz``, ``/readyz``.

:class:`~passage.telemetry.listener.OperatorsListener` serves them on the
metrics port; what ``/metrics`` reports is read from the services' own plain
counters by the collector the app assembles (``passage.scrape``).
"""

from passage.telemetry.listener import OPERATOR_LIMITS, OperatorsListener

__all__ = ["OPERATOR_LIMITS", "OperatorsListener"]
