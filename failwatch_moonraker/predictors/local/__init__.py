"""Local predictor back-ends: a model run on this host, in an engine process of its own.

:mod:`.engine` supervises one engine child (spawn at low priority, framed
request/reply over stdin/stdout, timeouts, restarts, unloading between prints);
each backend module adds what is particular to its model.
"""
