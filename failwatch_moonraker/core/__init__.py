"""The pure core: temporal statistics, the decision rule and the per-print state machine.

No sockets, no clocks, no files: plain Python tested with plain vectors.
"""
