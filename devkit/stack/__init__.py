"""Local stack: creates template.yaml's queues, table, topic and secret with boto3 (moto or any endpoint).

Tests, the local runner and the benchmarks build their resources from template.yaml's own
Properties and resolve the functions' environment from it, so they cannot drift from what
is deployed: change a property in the template and it changes here too.

    with moto.mock_aws():
        stack = provision()
        env = stack.function_environment("IntakeFunction")

Against a server (e.g. ``moto.server.ThreadedMotoServer``) set ``AWS_ENDPOINT_URL``, or pass
``endpoint_url=``. Only the resource types below are created; functions, layers, log groups
and alarms are left to SAM (``Ref`` to them resolves to ``f"{prefix}-{LogicalId}"``).
"""

from devkit.stack.provision import Stack, deployed, provision
from devkit.stack.template import REPO_ROOT, load_template

__all__ = ["REPO_ROOT", "Stack", "deployed", "load_template", "provision"]
