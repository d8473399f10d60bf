"""The network side of ``passage doctor``: NAT discovery, transport probes, the measurement.

Adapters over the pure :mod:`passage.doctor` modules and the TURN client
(:mod:`passage.turnclient.aio`); :func:`run_doctor` runs them all.
"""

from .run import DoctorPlan, run_doctor

__all__ = ["DoctorPlan", "run_doctor"]
