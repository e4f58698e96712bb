"""The operator CLI `untag`: send untag requests to a stack, follow them to their result, inspect its work list and DLQ.

    untag --stack cc-untag-dev submit --contacts c1,c2 --remove-tags t1   # prints the request_id
    untag --stack cc-untag-dev status REQUEST_ID [--wait]                # request, activities, % done, result
    untag --stack cc-untag-dev pending                                   # the work lists: creation, polling
    untag --stack cc-untag-dev ambiguous                                 # creates that got no clear answer
    untag --stack cc-untag-dev dlq list | dlq redrive [--max N]
    untag --stack cc-untag-dev results --follow [--state failed]         # tail result events
    untag --stack cc-untag-dev auth login --client-id API_KEY            # first OAuth tokens into the secret

The stack is named by ``--stack NAME`` (its CloudFormation outputs are read) or ``--outputs FILE``
(a JSON of the outputs: an object, the ``[{"OutputKey", "OutputValue"}]`` list that
``sam list stack-outputs --output json`` prints, or ``aws cloudformation describe-stacks`` output).
``--endpoint-url`` (or ``AWS_ENDPOINT_URL``) points at a local AWS such as the runner's moto server.
Requests are validated here with the service's own code (``untag.request``) before they are sent;
the table is read with the service's own store (``untag.store``), never scanned.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from untag_operator.console import EXIT_ERROR, EXIT_INTERRUPTED, CliError
from untag_operator.dlq import cmd_dlq
from untag_operator.login import DEFAULT_SECRET_ENV, cmd_auth_login
from untag_operator.oauth import AUTHORIZE_URL, DEFAULT_SCOPE, TOKEN_URL
from untag_operator.results import RESULT_STATES, cmd_results
from untag_operator.status import cmd_status
from untag_operator.submit import cmd_preview, cmd_submit
from untag_operator.worklists import cmd_ambiguous, cmd_pending

EPILOG = """\
The target options go before or after the command. --stack reads the outputs IntakeQueueUrl,
ActivityTableName, ResultTopicArn and DeadLetterQueueUrl (auth login: TokenSecretArn) with
cloudformation:DescribeStacks; --outputs takes them as JSON (e.g. `sam list stack-outputs --output json`).
Environment: UNTAG_STACK or UNTAG_OUTPUTS when neither is given; AWS_ENDPOINT_URL for a local AWS; the
usual AWS credentials chain.

exit status: 0 done, 1 AWS or setup error (credentials, stack, permissions), 2 bad arguments or an invalid
request (nothing sent), 3 unknown request id (or, with --wait, not finished in time), 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("target")
    where.add_argument("--stack", default=argparse.SUPPRESS, metavar="NAME", help="deployed stack name")
    where.add_argument("--outputs", default=argparse.SUPPRESS, metavar="FILE", help="JSON of the stack's outputs")
    where.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: your AWS configuration)")
    where.add_argument("--profile", default=argparse.SUPPRESS, help="AWS profile")
    where.add_argument(
        "--endpoint-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="a local AWS endpoint (moto server, LocalStack)",
    )

    parser = argparse.ArgumentParser(
        prog="untag",
        parents=[common],
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        *,
        parents: Sequence[argparse.ArgumentParser] = (),
        **texts: str,
    ) -> argparse.ArgumentParser:
        """A subcommand with the target options, run by ``handler``; ``texts``: its help and description."""
        subparser = commands.add_parser(name, parents=[common, *parents], **texts)
        subparser.set_defaults(handler=handler)
        return subparser

    request = argparse.ArgumentParser(add_help=False)  # the request, from flags or a file: submit and preview
    source = request.add_mutually_exclusive_group(required=True)
    source.add_argument("--contacts", metavar="IDS", help="contact ids, comma-separated")
    source.add_argument("--emails", metavar="ADDRESSES", help="contacts by e-mail address, comma-separated")
    source.add_argument("--lists", metavar="IDS", help="the contacts of these lists")
    source.add_argument("--tags", metavar="IDS", help="the contacts carrying these tags")
    source.add_argument("--all-active", action="store_true", help="every active contact")
    source.add_argument("--new-subscribers", action="store_true", help="new subscribers")
    source.add_argument(
        "--file",
        metavar="FILE",
        help="the whole request body as JSON (bare or in an EventBridge/SNS envelope); - reads stdin",
    )
    request.add_argument("--remove-tags", metavar="IDS", help="the tags to remove, comma-separated")
    request.add_argument("--remove-tag-names", metavar="NAMES", help="the tags to remove, by name, comma-separated")
    request.add_argument("--exclude", metavar="IDS", help="contacts to leave alone (with --lists or --all-active)")
    request.add_argument("--exclude-emails", metavar="ADDRESSES", help="contacts to leave alone, by e-mail address")
    request.add_argument("--request-id", help="the idempotency key (default: the SQS messageId)")
    request.add_argument("--metadata", metavar="JSON", help="a JSON object echoed back in the result event")

    submit = command(
        "submit",
        cmd_submit,
        parents=[request],
        help="validate and send an untag request; prints its id",
        description="Validate a request with the service's own rules, send it to the intake "
        "queue, print its request_id (the SQS messageId when it has none).",
    )
    submit.add_argument("--dry-run", action="store_true", help="validate and print the body; send nothing")

    preview = command(
        "preview",
        cmd_preview,
        parents=[request],
        help="what a request would do (activities, contacts, unresolved names); nothing is done",
        description="Send the request with dry_run: the service resolves its names and addresses, counts "
        "its activities and contacts, creates nothing, and publishes a previewed event, printed here.",
    )
    preview.add_argument("--timeout", type=float, default=300.0, help="give up after SECONDS (300)")
    preview.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    preview.add_argument("--json", action="store_true", help="print the report as JSON")

    status = command(
        "status",
        cmd_status,
        help="a request: activities, percent done, result",
        description="What the activity table knows of one request.",
    )
    status.add_argument("request_id", metavar="REQUEST_ID")
    status.add_argument("--wait", action="store_true", help="poll until the request is finished")
    status.add_argument("--timeout", type=float, default=900.0, help="with --wait: give up after SECONDS (900)")
    status.add_argument("--interval", type=float, default=5.0, help="with --wait: seconds between reads (5)")
    status.add_argument("--json", action="store_true", help="print JSON")

    pending = command(
        "pending",
        cmd_pending,
        help="the activities the poller is waiting for",
        description="The poller's work list: activities not yet final (and final ones "
        "settling), and result events not yet published.",
    )
    pending.add_argument("--limit", type=int, default=1000, help="at most this many items (1000)")
    pending.add_argument("--json", action="store_true", help="print JSON")

    ambiguous = command(
        "ambiguous",
        cmd_ambiguous,
        help="creates that got no clear answer (an activity may exist, unfollowed)",
        description=cmd_ambiguous.__doc__,
    )
    ambiguous.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    ambiguous.add_argument("--json", action="store_true", help="print JSON")

    dead = command(
        "dlq",
        cmd_dlq,
        help="the intake dead-letter queue: list or redrive",
        description="List the intake's dead-letter queue (messages stay there), or move its "
        "messages back to the intake queue (they keep the id first known).",
    )
    dead.add_argument("action", choices=("list", "redrive"))
    dead.add_argument("--max", type=int, default=None, help="at most this many messages")

    results = command(
        "results",
        cmd_results,
        help="tail result events (--follow)",
        description="Subscribe a temporary SQS queue to the result topic and print events "
        "as they come; the queue and subscription are removed on exit.",
    )
    results.add_argument("--follow", "-f", action="store_true", help="follow live events (required)")
    results.add_argument(
        "--state",
        action="append",
        metavar="STATES",
        help=f"only these states (subscription filter policy): {', '.join(RESULT_STATES)}; repeat or comma-separate",
    )
    results.add_argument("--request-id", help="only this request's events")
    results.add_argument("--max-events", type=int, default=None, help="stop after N events")
    results.add_argument("--timeout", type=float, default=None, help="stop after SECONDS")
    results.add_argument("--wait-seconds", type=int, default=20, help=argparse.SUPPRESS)  # long-poll length
    results.add_argument("--json", action="store_true", help="print each event as one JSON line")

    auth = commands.add_parser(
        "auth",
        parents=[common],
        help="Constant Contact authorization: login (the first OAuth tokens)",
        description="Constant Contact authorization.",
    )
    auth_commands = auth.add_subparsers(dest="auth_command", metavar="COMMAND", required=True)
    login = auth_commands.add_parser(
        "login",
        parents=[common],
        allow_abbrev=False,  # so that no option prefix can take a secret
        help="authorize the app in a browser; write the first tokens to the stack's secret or a file",
        description="Constant Contact's OAuth2 authorization-code flow with PKCE: a listener on 127.0.0.1 waits "
        "for the browser to come back from the authorize URL, the code is exchanged for tokens, and they are "
        "written in the token secret's format (docs/contracts.md section 3) to --stack's TokenSecretArn, "
        "--secret-id or --token-file. No token or secret is ever printed.",
    )
    login.add_argument("--client-id", required=True, metavar="API_KEY", help="the app's API key (client_id)")
    secret = login.add_mutually_exclusive_group()
    secret.add_argument(
        "--client-secret-env",
        metavar="NAME",
        help=f"the environment variable holding the client secret (default: {DEFAULT_SECRET_ENV} when set; "
        f"without a secret untag is a public PKCE client)",
    )
    secret.add_argument("--ask-secret", action="store_true", help="type the client secret at a hidden prompt")
    login.add_argument("--client-secret", dest="plain_client_secret", help=argparse.SUPPRESS)  # refused, clearly
    destination = login.add_mutually_exclusive_group()
    destination.add_argument("--secret-id", metavar="ID", help="write to this Secrets Manager secret (ARN or name)")
    destination.add_argument("--token-file", metavar="PATH", help="write to this JSON file (mode 0600)")
    login.add_argument("--authorize-url", default=AUTHORIZE_URL, metavar="URL", help="(default: Constant Contact's)")
    login.add_argument("--token-url", default=TOKEN_URL, metavar="URL", help="(default: Constant Contact's)")
    redirect = login.add_mutually_exclusive_group()
    redirect.add_argument(
        "--redirect-port",
        type=int,
        default=0,
        metavar="PORT",
        help="the listener's port: redirect URI http://127.0.0.1:PORT/callback (default 0: any free port)",
    )
    redirect.add_argument(
        "--redirect-uri", metavar="URI", help="a fixed loopback redirect URI, e.g. http://localhost:8765/callback"
    )
    login.add_argument("--scope", default=DEFAULT_SCOPE, help=f"(default: {DEFAULT_SCOPE})")
    login.add_argument("--no-browser", action="store_true", help="only print the URL to open")
    login.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS", help="wait for the browser (300)")
    login.set_defaults(handler=cmd_auth_login)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CliError as error:
        print(f"untag: error: {error}", file=sys.stderr)
        return error.code
    except (NoCredentialsError, PartialCredentialsError):
        print(
            "untag: error: no AWS credentials found: set AWS_PROFILE (or pass --profile), run `aws configure` or "
            "`aws sso login`, or export AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except NoRegionError:
        print("untag: error: no AWS region: pass --region or set AWS_DEFAULT_REGION", file=sys.stderr)
        return EXIT_ERROR
    except EndpointConnectionError as error:
        print(
            f"untag: error: cannot reach AWS at {error.kwargs.get('endpoint_url')} (network, region or "
            f"--endpoint-url?)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except ClientError as error:
        print(f"untag: error: {_explain(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("untag: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _explain(error: ClientError) -> str:
    details = error.response.get("Error", {})
    code, message = details.get("Code", "?"), details.get("Message", "")
    operation = error.operation_name
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return f"your AWS credentials have expired ({operation}): refresh them (e.g. `aws sso login`)"
    if code in ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"AWS does not accept these credentials ({code} on {operation})"
    if code in ("AccessDenied", "AccessDeniedException", "AuthorizationError"):
        return f"not allowed to {operation}: {message}"
    if code in (
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFound",
    ):
        return f"{operation}: the stack's resource does not exist ({message or code}); wrong outputs or region?"
    return f"{operation} failed: {code}: {message}"


if __name__ == "__main__":
    sys.exit(main())
