"""The untag service: remove tags from Constant Contact contacts, driven by events.

Domain (pure): ``request`` (the untag request, its normalisation and splitting),
``activity`` (activity states and the request rollup), ``result_event`` (the result event).
Adapters at the edge: ``constant_contact`` (API client), ``tokens`` (OAuth tokens),
``store`` (DynamoDB), ``publisher`` (SNS). Use cases: ``intake`` and ``poller``.
"""
