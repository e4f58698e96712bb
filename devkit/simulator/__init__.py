"""Stateful Constant Contact V3 simulator: the tag-removal activity API, contacts and tags, and the OAuth2
endpoints over real HTTP.

Serves `POST /v3/activities/contacts_taggings_remove`, `GET /v3/activities/{id}`, `GET /v3/activities`,
`GET /v3/contacts`, `GET /v3/contact_tags`, `GET /oauth2/default/v1/authorize` (authorization code with
PKCE, approved at once) and `POST /oauth2/default/v1/token` on 127.0.0.1 with the standard library only.
It enforces the API rules strictly (every request that breaks them is listed in `malformed`), models rate
limits, the daily quota, rotating refresh tokens and the activity lifecycle (a completed tag removal takes
its tags off the contacts it selects), and lets tests shape the account (`add_tag`, `add_contact`,
`seed_contacts`, ...) and inject faults. Used by the tests, `make run` and the benchmarks.
"""

from devkit.simulator.contract import ACTIVITIES, TAGGINGS_REMOVE, TOKEN_PATH, validate_tagging_body
from devkit.simulator.server import Call, ConstantContactSimulator

__all__ = ["ACTIVITIES", "TAGGINGS_REMOVE", "TOKEN_PATH", "Call", "ConstantContactSimulator", "validate_tagging_body"]
