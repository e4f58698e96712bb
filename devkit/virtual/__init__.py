"""The deployed event flow in virtual time: a burst of requests drained at the real rate limit, in seconds of real time.

Used by ``make bench`` (3,000 requests) and by a test (a few dozen). Everything that takes time
takes VIRTUAL time: the handlers (the ones template.yaml names) get ``Services`` with a virtual
clock and sleep (rate-limiter slots, back-off, token lock), their Lambda context counts down
on the virtual clock, the Constant Contact simulator stamps arrivals and keeps its rate and
quota windows on it, and each Constant Contact call and each AWS call made by a function
advances it by a modelled latency.

Each emulated Lambda invocation runs on its own thread, and :class:`VirtualClock` runs one
thread at a time: the clock moves only when every thread waits (a virtual sleep), to the
earliest wake-up (ties in the order the sleeps began), so runs are deterministic and
concurrent invocations really overlap in virtual time, sharing the one rate limit.

What is emulated from template.yaml: the intake queue and its dead-letter queue (moto SQS,
with the queue's redrive policy), the SQS event source mapping (``IntakeBatchSize``,
``IntakeBatchingWindowSeconds``, at most ``IntakeMaxConcurrency`` intake invocations at once,
each with the function's ``Timeout``; records reported in ``batchItemFailures`` come back
after the queue's ``VisibilityTimeout`` as another receive), and the poller on its schedule
(``PollSchedule``, reserved concurrency 1: a tick during a run is skipped) with its own
``Timeout``. Not modelled: the event source mapping's own SQS calls take no virtual time,
cold starts take none, and an instance's compute between calls takes none.

The parts: ``clock`` (the virtual clock), ``instances`` (an emulated Lambda instance's services and
context), ``burst`` (the burst, the event source mapping, the schedule), ``results`` (what it reports),
``sandbox`` (its environment, moto's SQS made fast enough).
"""

from devkit.virtual.burst import BurstOptions, run_burst
from devkit.virtual.clock import VirtualClock
from devkit.virtual.results import BurstResult, Invocation, max_calls_in_window

__all__ = ["BurstOptions", "BurstResult", "Invocation", "VirtualClock", "max_calls_in_window", "run_burst"]
