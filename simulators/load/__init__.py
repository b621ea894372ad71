"""Load: many simulated IDEs against any target, measured per flow (`sessionlab load`).

plan (what to run) -> worker (one process per core, each running its share of IDEs on one event
loop) -> flows (one IDE's script: create, chat, switch, restore) -> samples (latencies and errors
sent back in batches) -> run (targets, rounds, `--compare`) -> progress (live) and report (table,
JSON, HTML). The same flows run under Locust for loads beyond one machine (locustfile). Nothing
is imported here: `sessionlab` builds its parser from `simulators.load.cli` on every start.
"""
