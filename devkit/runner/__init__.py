"""`make run`: the whole untag pipeline on one machine, driven end to end, watched live and summed up.

Starts an embedded AWS (moto's ThreadedMotoServer on 127.0.0.1, resources built from
template.yaml by ``devkit.stack``) and the Constant Contact simulator, sends untag requests to the
intake queue, then drives the two functions in this process through ``devkit.pipeline`` (the SQS
event source mapping and the poller's schedule, emulated) until every request has its result
event or the timeout passes. Prints a live progress line (plain log lines when not a terminal),
then the result events and a summary. Exit status: 0 every request reached a final state,
1 some did not, 2 bad arguments or input, 3 the environment could not be set up, 130 interrupted.

    python -m devkit.runner                       # the sample requests of events/
    python -m devkit.runner --requests FILE.jsonl # one untag request per line
    python -m devkit.runner --generate 1000       # a generated load
"""
