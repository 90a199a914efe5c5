"""feeds.yaml: the bundled file is valid, and every bad file gets one line per problem naming the line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import add_feeds, load_config, parse_config, parse_duration
from aggregator.errors import ConfigError
from aggregator.models import FeedConfig

BUNDLED = Path(__file__).parent.parent / "feeds.yaml"


def test_the_bundled_feeds_yaml_is_valid_and_covers_the_digest_sources() -> None:
    config = load_config(BUNDLED)
    sources = {f.source for f in config.feeds}
    for needed in ("Netflix", "Amazon", "Meta", "Google", "DeepMind", "Microsoft", "HuggingFace", "OpenAI",
                   "Airbnb", "Pinterest", "LinkedIn", "네이버", "카카오", "스캐터랩", "하이퍼커넥트", "쏘카", "쿠팡",
                   "컬리", "드라마앤컴퍼니", "라이너", "토스", "우아한형제들"):
        assert needed in sources, needed
    assert all(f.url.startswith("https://") for f in config.feeds)
    assert config.default_db_url() == f"sqlite:///{BUNDLED.parent.resolve() / 'aggregator.db'}"


@pytest.mark.parametrize(("value", "seconds"), [(90, 90), ("90", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400),
                                                 ("2w", 1209600), (" 5 m ", 300)])
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["0m", "-5", "soon", "1y", True, "1.5h"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


BAD = """\
defaults:
  interval: 2h
  colour: blue
feeds:
  - name: A
    url: https://a.example/feed
  - name: B
    url: ftp://b.example/feed
    interval: often
  - name: A
    url: https://a.example/feed/
  - url: file:///etc/passwd
"""


def test_every_problem_is_one_line_with_file_line_and_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, path="feeds.yaml")
    lines = str(info.value).splitlines()
    assert "feeds.yaml:3: defaults.colour: unknown key" in lines
    assert "feeds.yaml:8: feeds[1].url: must be an http(s) URL, got 'ftp://b.example/feed'" in lines
    assert any(line.startswith("feeds.yaml:9: feeds[1].interval: ") for line in lines)
    assert "feeds.yaml:10: feeds[2].name: duplicate name 'A' (first used by feeds[0])" in lines
    assert any(line.startswith("feeds.yaml:11: feeds[2].url: duplicate url") for line in lines)
    assert any(line.startswith("feeds.yaml:12: feeds[3].name: ") for line in lines)  # missing name
    assert any(line.startswith("feeds.yaml:12: feeds[3].url: must be an http(s) URL") for line in lines)
    assert len(lines) == 7


def test_a_feed_name_of_spaces_alone_is_refused_with_its_line() -> None:
    text = "feeds:\n  - name: A\n    url: https://a.example/feed\n  - name: '   '\n    url: https://b.example/feed\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, path="feeds.yaml")
    assert str(info.value) == "feeds.yaml:4: feeds[1].name: must not be blank"


@pytest.mark.parametrize(("text", "expected"), [
    ("feeds:\n  - name: a\n  url: x\n", "feeds.yaml:3: "),  # broken indentation
    ("a: 1\na: 2\n", "feeds.yaml:2: "),  # duplicate key
    ("- just\n- a list\n", "feeds.yaml:1: the file must be a mapping"),
    ("feeds: {name: a}\n", "feeds.yaml:1: feeds: "),
])
def test_malformed_yaml_names_the_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path="feeds.yaml")
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")


def test_add_feeds_keeps_comments_and_order_and_skips_known(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("# my feeds\nfeeds:\n  # the first\n  - name: A  # inline\n    url: https://a.example/feed\n",
                    encoding="utf-8")
    added = add_feeds(path, [FeedConfig("A again", "https://a.example/feed/"), FeedConfig("B", "https://b.example/rss", "B", None, ("eng",))])
    assert [f.name for f in added] == ["B"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# my feeds\nfeeds:\n  # the first\n  - name: A  # inline\n")
    assert [f.name for f in load_config(path).feeds] == ["A", "B"]
    assert load_config(path).feeds[1].tags == ("eng",)


DIGESTS_YAML = """feeds:
  - name: A
    url: https://a.example/feed
    tags: [ko]
  - name: B
    url: https://b.example/feed
digests:
  - name: house
    title: Summary of Important AI & ML Blog Posts
  - name: trends
    title: AI 기술 트렌드
    style: footnote
    feeds: [B, "tag:ko"]
    tags: [ai-trend]
  - name: weekly
    title: Weekly ML/DL News
    style: weekly
    cadence: weekly
    feeds: [B]
"""


def test_digests_have_their_own_style_cadence_feeds_and_folders(tmp_path: Path) -> None:
    (tmp_path / "feeds.yaml").write_text(DIGESTS_YAML, encoding="utf-8")
    config = load_config(tmp_path / "feeds.yaml")
    house, trends, weekly = config.digest_list()
    assert (house.style, house.cadence, config.digest_feeds(house)) == ("house", "monthly", None)
    assert (trends.style, config.digest_feeds(trends)) == ("footnote", frozenset({"A", "B"}))
    assert (weekly.cadence, config.digest_feeds(weekly)) == ("weekly", frozenset({"B"}))
    assert config.drafts_dir(trends) == tmp_path / "drafts" / "trends"
    assert config.models_dir(trends) == tmp_path / "models" / "trends"
    assert config.digest("weekly") is weekly
    with pytest.raises(ConfigError, match=r"there are 3 digests \(house, trends, weekly\): pass --digest NAME"):
        config.digest(None)
    with pytest.raises(ConfigError, match="no digest named 'nope'"):
        config.digest("nope")


def test_without_digests_there_is_one_built_from_the_draft_settings(tmp_path: Path) -> None:
    (tmp_path / "feeds.yaml").write_text("draft:\n  dir: out\n  title: My Digest\nfeeds: []\n", encoding="utf-8")
    config = load_config(tmp_path / "feeds.yaml")
    [only] = config.digest_list()
    assert (only.name, only.title, only.style, only.cadence) == ("default", "My Digest", "house", "monthly")
    assert config.digest(None) == only
    assert config.drafts_dir(only) == tmp_path / "out" and config.models_dir(only) == tmp_path / "models"


@pytest.mark.parametrize("entry, message", [
    ("  - name: x\n    title: X\n    style: fancy\n", ":10: digests[0].style: Input should be 'house', 'footnote' or 'weekly'"),
    ("  - name: x\n    title: X\n    cadence: daily\n", ":10: digests[0].cadence: Input should be 'monthly' or 'weekly'"),
    ("  - name: x\n    title: X\n    feeds: [C]\n", ":10: digests[0].feeds[0]: no feed named 'C'"),
    ("  - name: x\n    title: X\n    feeds: ['tag:en']\n", ":10: digests[0].feeds[0]: no feed has the tag 'en'"),
    ("  - name: x\n    title: X\n  - name: x\n    title: Y\n", ":10: digests[1].name: duplicate name 'x'"),
    ("  - name: ../x\n    title: X\n", ":8: digests[0].name: String should match pattern"),
    ("  - name: x\n    title: X\n    colour: red\n", ":10: digests[0].colour: unknown key"),
])
def test_a_malformed_digest_is_one_clear_line(tmp_path: Path, entry: str, message: str) -> None:
    text = "feeds:\n  - name: A\n    url: https://a.example/feed\n    tags: [ko]\n  - name: B\n    url: https://b.example/feed\ndigests:\n" + entry
    (tmp_path / "feeds.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "feeds.yaml")
    assert message in str(caught.value) and len(str(caught.value).splitlines()) == 1
