"""Back-ends that run a model on the printer host, each in a process of its own."""
