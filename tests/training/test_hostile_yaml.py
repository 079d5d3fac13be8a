"""Strategy YAML from outside: alias bombs and deep nesting are refused small and fast, never
expanded into a huge answer or a RecursionError (the API, the validator and the pages)."""

from __future__ import annotations

import pytest

from training.errors import StrategyError
from training.strategy import parse_strategy

pytestmark = pytest.mark.django_db

LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "name: *i",
    ]
)
DEEP = "name: x\nindicators: " + "[" * 600 + "]" * 600 + "\n"


def test_an_alias_bomb_is_refused_before_it_expands():
    assert len(LAUGHS) < 600
    with pytest.raises(StrategyError, match="more than 50 aliases"):
        parse_strategy(LAUGHS)


def test_deep_nesting_is_refused_without_a_recursion_error():
    with pytest.raises(StrategyError, match="nested deeper than 32 levels"):
        parse_strategy(DEEP)


def test_offending_values_are_quoted_short():
    text = (
        "labels: {type: [" + ", ".join(["x" * 50] * 2000) + "]}\n"
        "training_data: {symbols: [" + "Y" * 10_000 + "]}\n"
    )
    with pytest.raises(StrategyError) as caught:
        parse_strategy(text)
    assert len(str(caught.value)) < 2000
    assert "a list of 2000 items" in str(caught.value)
    assert "Y" * 81 not in str(caught.value)


def test_the_validate_api_answers_an_alias_bomb_with_a_small_400(api):
    response = api.post("/api/v1/training/strategies/validate/", {"yaml": LAUGHS}, format="json")
    assert response.status_code == 400
    assert len(response.content) < 4000
    assert "aliases" in response.json()["error"]["message"]


def test_hostile_files_in_the_strategies_folder_leave_the_pages_and_api_working(
    api, logged_in, settings, tmp_path
):
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "deep.yaml").write_text(DEEP)
    (folder / "laughs.yaml").write_text(LAUGHS)
    settings.KTRDR = {**settings.KTRDR, "STRATEGIES_DIR": folder}

    listing = api.get("/api/v1/training/strategies/")
    page = logged_in.get("/training/")
    one = logged_in.get("/training/strategies/laughs/")

    assert listing.status_code == 200
    assert len(listing.content) < 20_000
    assert page.status_code == 200
    assert one.status_code == 200
    assert len(one.content) < 200_000
