"""Load: many simulated IDEs against any target, measured per flow (`sessionlab load`).

plan (what to run) -> worker (one process per core, each running its share of IDEs on one event
loop) -> flows (one IDE's script: create, chat, switch, restore) -> samples (latencies and errors
sent back in batches) -> run (the rounds, one target or two alternating) -> progress (live) and
report (table, JSON, HTML). Starting the targets is the command's (sessionlab.load_run), and they
reach the rounds as plain endpoints. The same flows run under Locust for loads beyond one machine
(locustfile). Nothing is imported here: `sessionlab` builds its parser from `sessionlab.load`,
which reads `simulators.load.plan`, on every start.
"""
