"""The redrive contract: the SQS message attribute that carries a request's first known id back to the intake.

A request without its own ``request_id`` is known by the messageId of its first delivery. A message
moved back from the dead-letter queue gets a new messageId, so whoever redrives it (the operator
tool's ``untag dlq redrive``) sets this String attribute to the id the message was first known by,
and the intake (``untag.intake.message_from_record``) reads the request under that id again.
"""

REQUEST_ID_ATTRIBUTE = "request_id"
