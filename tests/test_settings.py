"""Settings: read once, with clear errors that name the variable."""

import pytest

from crm.settings import SettingError, load


def test_defaults() -> None:
    settings = load({})
    assert (settings.host, settings.port, settings.email_hour) == ("127.0.0.1", 8000, 7)
    assert settings.database_url is None and settings.smtp_url is None
    assert settings.cookie_secure is False


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be a whole number, got 'eighty'"),
        ({"PORT": "70000"}, "PORT must be between 1 and 65535, got 70000"),
        ({"CRM_EMAIL_HOUR": "24"}, "CRM_EMAIL_HOUR must be between 0 and 23, got 24"),
        ({"CRM_SMTP_URL": "http://mail"}, "CRM_SMTP_URL must start with smtp://"),
        ({"CRM_COOKIE_SECURE": "maybe"}, "CRM_COOKIE_SECURE must be true or false"),
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
