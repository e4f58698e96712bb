"""The developer kit: what only developers run, never deployed and never installed by operators.

``stack`` builds template.yaml's queues, table, topic and secret in moto or any AWS endpoint;
``simulator`` is the Constant Contact API on 127.0.0.1; ``pipeline`` emulates the event sources
and drives both functions in-process; ``runner`` is ``make run``. The domain package ``untag``
(layers/shared) must be importable: ``make`` installs the project in the dev venv in editable
mode, and pytest puts layers/shared on the path.
"""
