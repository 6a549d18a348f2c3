"""What runs against a live lab from the inside: probes and their agent, the watcher and its
alarms, faults, the slow path, and where a broken flow dies."""
