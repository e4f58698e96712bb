"""The operator tool: the `untag` command that sends requests to a deployed stack and inspects its work.

Installed with ``pip install .``, ``pipx install .`` or ``uv tool install .`` from the repository
root, together with the service's own domain package ``untag`` (requests are validated and the
table is read with the service's code). docs/operator-cli.md tells how to use it.
"""
