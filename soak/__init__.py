"""A year of sessions in an afternoon: the real apartment's processes, played and broken.

``python -m soak`` starts Mosquitto with the production config, the controller and seven
simulated rooms as real processes (each under libfaketime), plays 24 sessions through
the game master's HTTP routes and the rehearsal hands, injects faults from outside —
``kill -9`` of any process, a stepped wall clock, a full disk — and checks the safety and
correctness invariants from outside only (MQTT bytes and HTTP). Nothing imports it.

- :mod:`soak.procs`: the processes, their clocks, the tmpfs;
- :mod:`soak.wire`: a bare paho client on ``escape/#``;
- :mod:`soak.console`: the game master's HTTP, and the poller of ``/api/state``;
- :mod:`soak.game`: the game file read as a game master reads it;
- :mod:`soak.groups`: the year's groups, drawn from the seed;
- :mod:`soak.faults`: the faults, their healing, the time to recover;
- :mod:`soak.invariants`: the checks;
- :mod:`soak.run`: the year; :mod:`soak.report`: JSON and Markdown.
"""
