"""docs/configuration.md is generated from the settings classes and must stay current."""

from pathlib import Path

from services.common.settings_doc import field_comments, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: python -m services.common.settings_doc > "
        "docs/configuration.md"
    )


def test_every_setting_is_described() -> None:
    undescribed = [line for line in render().splitlines() if line.endswith("|  |")]
    assert undescribed == []


def test_a_heading_comment_speaks_for_its_paragraph_only() -> None:
    class Sample:
        # about a and b
        a: int = 1
        b: int = 2  # b itself

        c: int = 3

    comments = field_comments(Sample)
    assert comments == {"a": "about a and b", "b": "about a and b b itself", "c": ""}
