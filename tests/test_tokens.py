"""Position tokens: what a page is given instead of a global position."""

from hypothesis import given
from hypothesis import strategies as st

from crm.web.tokens import Tokens

TOKENS = Tokens("the app's secret key")


def test_a_token_opens_to_the_position_it_was_sealed_from() -> None:
    for position in (0, 1, 2**31, 2**63 - 1):
        assert TOKENS.opened(TOKENS.seal(position)) == position


def test_tokens_of_one_position_differ_and_tokens_have_no_order() -> None:
    assert TOKENS.seal(7) != TOKENS.seal(7)
    sealed = [TOKENS.seal(position) for position in range(1, 101)]
    assert sorted(sealed) != sealed
    assert {len(token) for token in sealed} == {48}
    assert not any(token.isdigit() for token in sealed)


def test_another_apps_token_does_not_open() -> None:
    assert Tokens("another secret").opened(TOKENS.seal(7)) is None


def test_an_altered_token_does_not_open() -> None:
    token = TOKENS.seal(7)
    for index in range(len(token)):
        changed = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
        assert TOKENS.opened(changed) is None


@given(st.text(max_size=200))
def test_anything_written_by_hand_is_none_never_an_error(raw: str) -> None:
    assert TOKENS.opened(raw) is None


def test_absent_and_numbers_are_none() -> None:
    for raw in (None, "", "1", "999999", "²", "9" * 5_000, "=" * 48):
        assert TOKENS.opened(raw) is None
