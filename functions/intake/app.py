"""Intake function: an SQS batch of untag requests becomes Constant Contact activities (see ``untag.intake``)."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from untag.budget import TimeBudget
from untag.intake import accept_batch, message_from_record
from untag.observability import lambda_entry
from untag.services import current_services


class RetryLater(Exception):
    """This record's request is not done yet; SQS delivers it again."""


@lambda_entry
def lambda_handler(event: dict, context) -> dict:
    services = current_services()
    messages = [message_from_record(record) for record in event.get("Records", ())]
    retry = accept_batch(messages, services, TimeBudget(context, services.config.time_reserve_seconds))

    def record_handler(record) -> None:
        if record.message_id in retry:
            raise RetryLater(record.message_id)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
