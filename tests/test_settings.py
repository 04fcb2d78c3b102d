"""Settings: read once, with clear errors that name the variable."""

import pytest

from crm.settings import SettingError, load
from harness.processes import run_module


def test_defaults() -> None:
    settings = load({})
    assert (settings.host, settings.port, settings.email_hour) == ("127.0.0.1", 8000, 7)
    assert settings.database_url is None and settings.smtp_url is None
    assert settings.cookie_secure is False
    assert settings.allowed_hosts == ("localhost", "127.0.0.1", "[::1]")
    assert settings.operator_token is None
    assert settings.trusted_proxies == ("127.0.0.1", "::1") and settings.public_url is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be a whole number, got 'eighty'"),
        ({"PORT": "70000"}, "PORT must be between 1 and 65535, got 70000"),
        ({"CRM_EMAIL_HOUR": "24"}, "CRM_EMAIL_HOUR must be between 0 and 23, got 24"),
        ({"CRM_SMTP_URL": "http://mail"}, "CRM_SMTP_URL must start with smtp://"),
        ({"CRM_COOKIE_SECURE": "maybe"}, "CRM_COOKIE_SECURE must be true or false"),
        ({"CRM_ALLOWED_HOSTS": "https://crm.example.com"}, "CRM_ALLOWED_HOSTS must be host names"),
        ({"CRM_ALLOWED_HOSTS": "crm.example.com:443"}, "CRM_ALLOWED_HOSTS must be host names"),
        ({"CRM_ALLOWED_HOSTS": "a.example,"}, "CRM_ALLOWED_HOSTS must be host names"),
        ({"CRM_ALLOWED_HOSTS": "*.*.example"}, "CRM_ALLOWED_HOSTS must be host names"),
        ({"CRM_OPERATOR_TOKEN": "secret"}, "CRM_OPERATOR_TOKEN must be at least 32 characters"),
        ({"CRM_TRUSTED_PROXIES": "proxy.internal"}, "CRM_TRUSTED_PROXIES must be IP addresses"),
        ({"CRM_PUBLIC_URL": "crm.example.com"}, "CRM_PUBLIC_URL must be like https://"),
        ({"CRM_PUBLIC_URL": "https://crm.example.com/app"}, "CRM_PUBLIC_URL must be like"),
        ({"CRM_PUBLIC_URL": "https://me@evil.example"}, "CRM_PUBLIC_URL must be like"),
        ({"CRM_PUBLIC_URL": "https://crm.example.com/?x=1"}, "CRM_PUBLIC_URL must be like"),
        (
            {"CRM_ALLOWED_HOSTS": "*.example.com", "CRM_SMTP_URL": "smtp://mail"},
            "CRM_PUBLIC_URL must be set when CRM_ALLOWED_HOSTS has a wildcard",
        ),
    ],
)
def test_a_bad_value_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        load(environ)


def test_values_are_read() -> None:
    settings = load(
        {
            "DATABASE_URL": "postgresql:///x",
            "PORT": "9000",
            "CRM_EMAIL_HOUR": "6",
            "CRM_SMTP_URL": "smtps://u:p@mail:465",
            "CRM_COOKIE_SECURE": "true",
        }
    )
    assert settings.database_url == "postgresql:///x"
    assert (settings.port, settings.email_hour, settings.cookie_secure) == (9000, 6, True)


def test_allowed_hosts_are_read_and_ipv6_addresses_are_bracketed() -> None:
    # Starlette compares an IP literal with its brackets: a Host of "[::1]:8000" is "[::1]"
    settings = load({"CRM_ALLOWED_HOSTS": " CRM.example.com, *.example.org,::1,[0:0::2], 10.0.0.5"})
    assert settings.allowed_hosts == (
        "crm.example.com",
        "*.example.org",
        "[::1]",
        "[::2]",
        "10.0.0.5",
    )


def test_an_operator_token_is_read() -> None:
    token = "0123456789abcdef0123456789abcdef"
    assert load({"CRM_OPERATOR_TOKEN": token}).operator_token == token


def test_trusted_proxies_and_the_public_url_are_read() -> None:
    settings = load(
        {
            "CRM_TRUSTED_PROXIES": "10.0.0.5, 172.16.0.0/12",
            "CRM_PUBLIC_URL": "https://crm.example.com/",
            "CRM_ALLOWED_HOSTS": "*",
            "CRM_SMTP_URL": "smtp://mail",
        }
    )
    assert settings.trusted_proxies == ("10.0.0.5", "172.16.0.0/12")
    assert settings.public_url == "https://crm.example.com"


def test_the_app_refuses_to_start_with_the_message_and_no_traceback() -> None:
    started = run_module("crm", env={"PORT": "eighty"}, timeout=60)
    assert started.returncode == 1
    assert "crm cannot start: PORT must be a whole number, got 'eighty'" in started.stderr
    assert "Traceback" not in started.stderr
