"""The XDP adapter of :mod:`passage.offload`: libbpf through ctypes, rtnetlink, attach and maps.

Imported only when ``--offload`` asks for it; nothing here runs for a default
``passage serve``.
"""
