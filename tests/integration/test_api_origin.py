"""The access token only ever goes to the configured API origin; plain http only on loopback."""

from __future__ import annotations

import re

import pytest
import yaml

from untag.constant_contact import ConstantContactClient, PermanentApiError


class FixedToken:
    def __init__(self, token: str = "token-under-test"):
        self.token = token

    def access_token(self) -> str:
        return self.token

    def after_unauthorized(self, rejected_token: str) -> str:
        return rejected_token


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v3/activities?cursor=1",
        "//evil.example/v3/activities?cursor=1",
        "http://127.0.0.2:9/v3/activities",
    ],
)
def test_a_next_link_to_another_host_is_refused_and_nothing_is_sent(simulator, link, caplog):
    client = ConstantContactClient(simulator.base_url, FixedToken())
    with pytest.raises(PermanentApiError, match="another host"):
        client.list_activities(next_link=link)
    assert simulator.calls == []
    assert "token-under-test" not in caplog.text


def test_a_relative_next_link_is_followed_on_the_api_origin(simulator):
    simulator.add_foreign_activities(3)
    client = ConstantContactClient(simulator.base_url, FixedToken(simulator.issue_tokens()["access_token"]))
    client.list_activities(next_link="/v3/activities?limit=2")
    assert [call.path for call in simulator.calls] == ["/v3/activities"]


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://api.cc.email/v3", True),
        ("http://127.0.0.1:8080/v3", True),
        ("http://localhost:9000/v3", True),
        ("http://[::1]:9000/v3", True),
        ("http://api.cc.email/v3", False),
        ("http://127.0.0.1.evil.example/v3", False),
        ("ftp://api.cc.email", False),
    ],
)
def test_the_template_refuses_plain_http_except_on_loopback(url, allowed):
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load(open("template.yaml", encoding="utf-8"), Loader=Loader)  # noqa: S506 - SafeLoader subclass
    for name in ("CcApiBaseUrl", "CcTokenUrl"):
        pattern = template["Parameters"][name]["AllowedPattern"]
        assert bool(re.fullmatch(pattern, url)) is allowed, (name, url)
