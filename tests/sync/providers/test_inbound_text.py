"""Body text extraction: HTML, WordPress blocks, Contentful Rich Text and Strapi Blocks."""

from __future__ import annotations

from bridge.sync.providers.text import blocks_to_text, body_text, html_to_text, rich_text_to_text
from bridge.sync.providers.values import id_str, iso, time_ms, version


def test_wordpress_block_comments_are_stripped():
    """`<!-- wp:... -->` block delimiters never reach the text."""
    html = (
        "<!-- wp:heading --><h2>Menu</h2><!-- /wp:heading -->"
        "<!-- wp:paragraph --><p>Soup</p><!-- /wp:paragraph -->"
    )
    assert html_to_text(html) == "Menu\nSoup"


def test_inline_markup_does_not_split_words():
    """Inline elements join their text; block elements start new lines."""
    assert (
        html_to_text("<p>Hello <strong>bold</strong> world</p><p>Next</p>")
        == "Hello bold world\nNext"
    )


def test_scripts_and_styles_are_dropped():
    """Script and style contents are not visible text."""
    assert html_to_text("<style>p{}</style><p>Shown</p><script>alert(1)</script>") == "Shown"


def test_an_unclosed_dropped_tag_ends_with_its_parent():
    """An unclosed <noscript> or <template> hides only its own content, not the rest of the
    document (closing a parent closes it, as browsers do)."""
    assert (
        html_to_text("<section><noscript><img src=a.jpg></section><p>Main body text</p>")
        == "Main body text"
    )
    assert html_to_text("<ul><li>a<template>t</li><li>b</li></ul>c") == "a\nb\nc"
    assert html_to_text("<noscript><template>x</noscript>after") == "after"


def test_entities_and_non_breaking_spaces_are_normalised():
    """Entities decode and runs of whitespace, including NBSP, collapse to one space."""
    assert html_to_text("<p>Fish&nbsp;&amp;   chips\t&eacute;</p>") == "Fish & chips é"


def test_text_that_looks_like_a_url_raises_no_warning():
    """A body that is just a URL is text, not a warning (warnings are errors here)."""
    assert html_to_text("<b>https://example.com/a</b>") == "https://example.com/a"
    assert html_to_text("https://example.com/a") == "https://example.com/a"


def test_contentful_rich_text_flattens_to_lines():
    """Rich Text blocks become lines; hyperlinks stay inline."""
    doc = {
        "nodeType": "document",
        "content": [
            {"nodeType": "heading-1", "content": [{"nodeType": "text", "value": "Title"}]},
            {
                "nodeType": "unordered-list",
                "content": [
                    {
                        "nodeType": "list-item",
                        "content": [
                            {
                                "nodeType": "paragraph",
                                "content": [{"nodeType": "text", "value": "a"}],
                            }
                        ],
                    },
                    {
                        "nodeType": "list-item",
                        "content": [
                            {
                                "nodeType": "paragraph",
                                "content": [
                                    {"nodeType": "text", "value": "see "},
                                    {
                                        "nodeType": "hyperlink",
                                        "content": [{"nodeType": "text", "value": "b"}],
                                    },
                                ],
                            }
                        ],
                    },
                ],
            },
        ],
    }
    assert rich_text_to_text(doc) == "Title\na\nsee b"


def test_strapi_blocks_flatten_to_lines():
    """Strapi Blocks become lines; links stay inline."""
    blocks = [
        {"type": "quote", "children": [{"type": "text", "text": "Quoted"}]},
        {
            "type": "paragraph",
            "children": [{"type": "link", "children": [{"type": "text", "text": "L"}]}],
        },
    ]
    assert blocks_to_text(blocks) == "Quoted\nL"


def test_markdown_bodies_keep_their_text():
    """Markdown (a plain string) is kept, with whitespace normalised."""
    assert body_text("# Title\n\n  Some *text*  ") == "# Title\nSome *text*"


def test_empty_bodies_are_none():
    """An empty or missing body maps to None rather than an empty string."""
    assert body_text("<p> </p>") is None
    assert body_text(None) is None


def test_large_integer_ids_stay_exact():
    """Integers above 2**53 render exactly; floats that may have lost digits are refused."""
    assert id_str(2**63 - 1) == "9223372036854775807"
    assert id_str(float(2**53 + 2)) is None
    assert id_str(True) is None


def test_times_read_iso_with_and_without_zones_and_epochs():
    """ISO with offset, ISO without zone (UTC), epoch seconds and epoch ms agree."""
    expected = 1714557600000
    assert time_ms("2024-05-01T06:00:00-04:00") == expected
    assert time_ms("2024-05-01 10:00:00") == expected
    assert time_ms(1714557600, "s") == expected
    assert time_ms(1714557600000) == expected
    assert time_ms("0000-00-00 00:00:00") is None
    assert iso(expected) == "2024-05-01T10:00:00.000Z"


def test_versions_sort_as_strings_in_time_order():
    """Zero-padded versions sort lexically the way their times sort numerically."""
    times = [999, 1714557600000, 1714557600001, 10**14]
    assert sorted(version(t) for t in reversed(times)) == [version(t) for t in times]
    assert version(5, 10) > version(5, 9)
