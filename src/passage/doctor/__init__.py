"""``passage doctor``: a network assessment to run before blaming the app.

The pure parts live here and do no I/O: what to probe (:mod:`.targets`), the
statistics of a probe stream with time passed in (:mod:`.stats`), the typed
report and its JSON (:mod:`.report`), the verdict and exit status
(:mod:`.verdict`), the readable text (:mod:`.render`). The probes that touch
the network are the adapter :mod:`passage.doctor.aio`; the command is
:mod:`passage.cli.doctor`. docs/doctor.md says what it measures and how.
"""
