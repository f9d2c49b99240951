"""Keyword topics: matching semantics, scoring, rules, explanations, and the default topics."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.config import GroupingConfig, load_config
from newsletter.errors import ConfigError
from newsletter.models import OTHER, Paper, Topic
from newsletter.sources import read_source
from newsletter.topics import explain
from newsletter.topics.engine import (
    TopicMatcher,
    assign_all,
    compile_topics,
)
from newsletter.topics.specificity import DocumentFrequencies
from tests.support.paths import DATA, REPO, SAMPLES


def paper(title: str, abstract: str = "", id: str = "p1") -> Paper:
    return Paper(id=id, title=title, abstract=abstract)


def topic(name: str, *keywords: str, exclude: tuple[str, ...] = (), require=()) -> Topic:
    return Topic(name, tuple(keywords), tuple(exclude), tuple(require))


def matcher(*topics: Topic, **grouping: object) -> TopicMatcher:
    """A matcher whose keywords all weigh 1, so that scores are easy to work out by hand."""
    return TopicMatcher(topics, GroupingConfig(**grouping), specificity=False)


def topic_of(m: TopicMatcher, title: str, abstract: str = "") -> str:
    return m.assign(paper(title, abstract)).topic


# -- whole words, case, variants --------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("LLM", "what LLMs know"),
        ("llm", "What LLMs Know"),
        ("agent", "Multi-step agents for the web"),
        ("agents", "An agent for the web"),
        ("diffusion model", "Fast Diffusion Models"),
        ("strategy", "Sampling strategies compared"),
        ("patch", "Image patches and tokens"),
        ("analysis", "Two analyses of a benchmark"),
        ("text-to-image", "text to image synthesis"),
        ("text-to-image", "Text-to-Images at scale"),
        ("text to image", "a text-to-image model"),
        ("fine-tuning", "Finetuning small models"),
        ("fine-tuning", "fine tuning small models"),
        ("RL", "RL-based planners (RL) work"),
        ("vision-language model", "Vision - Language\nModels"),
        ("Schrödinger bridge", "light SCHRÖDINGER bridges"),
    ],
)
def test_keyword_matches_case_plural_and_hyphen_variants(keyword: str, text: str) -> None:
    m = matcher(topic("T", keyword))
    assert topic_of(m, text) == "T"


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("art", "A fresh start for state-of-the-artefacts"),
        ("RL", "Parse every URL and CURL call"),
        ("agent", "agentic workflows and reagents"),
        ("news", "A new model"),
        ("diffusion model", "diffusion. Model sizes"),  # a phrase does not cross a full stop
        ("model", "modeling and remodel"),
        ("text-to-image", "text-to-imagery"),
    ],
)
def test_keyword_never_matches_inside_another_word(keyword: str, text: str) -> None:
    m = matcher(topic("T", keyword))
    assert topic_of(m, text) == OTHER


@pytest.mark.parametrize(
    ("keyword", "text", "matches"),
    [
        ("CLIP", "We clip the gradients", False),
        ("CLIP", "Clip-level features", False),
        ("CLIP", "features from CLIP and SigLIP", True),
        ("CLIP", "two CLIPs fused", True),
        ("LLM", "llms and Llm", False),
        ("LLM", "what LLMs know", True),
        ("RAG", "a rag doll", False),
        ("RAG", "RAG-based pipelines", True),
        ("GPT-4", "GPT-4 and GPT4", True),
        ("GPT-4", "gpt-4 only", False),
        ("KV cache", "the KV Caches of a model", True),
        ("KV cache", "the kv cache", False),
        ("LoRA", "lora adapters", True),  # mixed case is not capitals: any case matches
        ("clip", "We CLIP the gradients", True),  # written in lower case: any case matches
    ],
)
def test_keyword_in_capitals_matches_that_spelling_only(keyword, text, matches) -> None:
    m = matcher(topic("T", keyword))
    assert (topic_of(m, text) == "T") is matches


def test_capitals_and_lower_case_of_one_keyword_in_two_topics() -> None:
    m = matcher(topic("Vision", "CLIP"), topic("Audio", "clip"))
    assert topic_of(m, "A CLIP probe") == "Vision"  # both match; the tie goes to the first
    assert topic_of(m, "An audio clip") == "Audio"


def test_overlapping_phrases_count_once_per_topic_and_once_for_each_other_topic() -> None:
    m = matcher(
        topic("LM", "large language model", "language model"),
        topic("Theory", "language model"),
    )
    scores = {s.topic: s for s in m.scores(paper("", "Large language models are few-shot."))}
    assert [(h.keyword, h.count) for h in scores["LM"].hits] == [("large language model", 1)]
    assert [(h.keyword, h.count) for h in scores["Theory"].hits] == [("language model", 1)]


# -- scoring ------------------------------------------------------------------------------------


def test_title_hit_outweighs_abstract_hits() -> None:
    g = GroupingConfig()
    m = matcher(topic("Abstract", "speech"), topic("Title", "robot"))
    a = m.assign(paper("A robot", "Speech is hard. Speech is noisy."))
    assert a.topic == "Title"
    assert a.score == pytest.approx(1 + math.log(g.title_weight))  # 2.10 against 1.69
    assert a.runner_up is not None and a.runner_up.topic == "Abstract"


def test_weights_come_from_the_grouping_config() -> None:
    m = matcher(topic("Abstract", "speech"), topic("Title", "robot"), title_weight=1.0)
    a = m.assign(paper("A robot", "Speech is hard. Speech is noisy."))
    assert a.topic == "Abstract"


def test_repeated_hits_count_with_diminishing_returns() -> None:
    m = matcher(topic("T", "agent"))
    once = m.assign(paper("", "An agent."))
    twice = m.assign(paper("", "An agent. Another agent."))
    ten = m.assign(paper("", " ".join(["agent"] * 10)))
    assert once.score < twice.score < 2 * once.score
    assert twice.score < ten.score < 10 * once.score
    assert twice.hits[0].count == 2 and twice.hits[0].field == "abstract"


def test_distinct_keywords_add_up() -> None:
    m = matcher(topic("T", "agent", "tool use"))
    one = m.assign(paper("", "An agent."))
    two = m.assign(paper("", "An agent with tool use."))
    assert two.score == pytest.approx(2 * one.score)


def test_source_keywords_are_a_third_field_with_their_own_weight() -> None:
    m = matcher(topic("Agents", "tool use"), topic("Vision", "segmentation"), keyword_weight=2.0)
    p = Paper(id="k", title="A study", abstract="We study segmentation.", keywords=("tool use",))
    a = m.assign(p)
    assert a.topic == "Agents"
    assert a.score == pytest.approx(1 + math.log(2.0))
    assert (a.hits[0].field, a.hits[0].count) == ("keywords", 1)
    off = matcher(topic("Agents", "tool use"), topic("Vision", "segmentation"), keyword_weight=0)
    assert off.assign(p).topic == "Vision"


def test_key_phrases_are_matched_one_by_one() -> None:
    m = matcher(topic("T", "tool use"))
    p = Paper(id="k", title="x", keywords=("LLM tool", "use cases"))
    assert m.assign(p).topic == OTHER  # "tool" ends one phrase, "use" starts the next


# -- specificity --------------------------------------------------------------------------------


def table(docs: int, **counts: int) -> DocumentFrequencies:
    return DocumentFrequencies(docs, {k.replace("_", " "): v for k, v in counts.items()})


def drawn(idf: float, docs: int) -> float:
    """An inverse document frequency drawn towards 1 by a background of `docs` papers."""
    return 1 + (idf - 1) * docs / (docs + 500)


def test_a_rare_keyword_outweighs_a_common_one() -> None:
    topics = [topic("Language", "language"), topic("HCI", "user study")]
    background = table(1000, language=300, user_study=5)
    m = TopicMatcher(topics, table=background, breadth=0)
    p = paper("", "A language model helps a language tutor. A user study with 12 people.")
    a = m.assign(p)
    assert a.topic == "HCI"
    assert m.specificity("language") == pytest.approx(drawn(math.log10(1001 / 301), 1000))
    assert m.specificity("user study") == pytest.approx(drawn(math.log10(1001 / 6), 1000))
    assert a.hits[0].weight == pytest.approx(m.specificity("user study"), abs=1e-3)
    plain = TopicMatcher(topics, table=background, specificity=False)
    assert plain.assign(p).topic == "Language"  # two hits of the broad word win without weights


def test_the_batch_joins_the_background() -> None:
    m = TopicMatcher([topic("T", "agent"), topic("U", "robot")], table=table(0), breadth=0)
    batch = [paper(f"agent {i}", id=str(i)) for i in range(3)] + [paper("robot", id="r")]
    batch += [paper(f"galaxy {i}", id=f"g{i}") for i in range(6)]
    assign_all(batch, m)
    assert m.background.docs == 10
    assert m.specificity("agent") == pytest.approx(drawn(math.log10(11 / 4), 10))
    assert m.specificity("robot") == pytest.approx(drawn(math.log10(11 / 2), 10))
    assign_all(batch, m)  # papers seen before are not counted again
    assert m.background.docs == 10


def test_a_topic_of_common_words_is_divided_by_its_breadth() -> None:
    topics = [topic("Broad", "model", "data", "learning"), topic("Narrow", "speech")]
    background = table(1000, model=500, data=400, learning=450, speech=20)
    m = TopicMatcher(topics, GroupingConfig(min_score=0.1), table=background, breadth=0.5)
    broad, narrow = m.background.breadths
    assert broad > 1 > narrow
    assert m.assign(paper("", "A model of speech.")).topic == "Narrow"
    p = paper("", "A model and data for learning.")
    text = explain(p, m.assign(p))
    assert f"divided by {broad:.2f}: the breadth of the topic" in text and "common" in text


def test_min_score_asks_for_hits_not_for_weight() -> None:
    m = TopicMatcher([topic("T", "model")], table=table(1000, model=900), breadth=0)
    a = m.assign(paper("", "A model."))
    assert a.topic == "T" and a.score == pytest.approx(drawn(0.1, 1000))  # a common word
    strict = TopicMatcher(
        [topic("T", "model")], GroupingConfig(min_score=1.5), table=table(1000, model=5)
    )
    assert strict.assign(paper("", "A model.")).topic == OTHER  # one hit: evidence 1 < 1.5
    assert strict.assign(paper("A model")).topic == "T"  # a title hit: 1 + ln 3


def test_bundled_table_gives_broad_words_low_weights_within_a_narrow_band() -> None:
    m = TopicMatcher([topic("T", "model", "language model", "speculative decoding")])
    weights = [m.specificity(k) for k in ("model", "language model", "speculative decoding")]
    assert weights == sorted(weights) and weights[1] < 1.0 < weights[2]
    assert weights[0] > 0.5 and weights[2] < 1.5  # a few hundred papers cannot swing them far


# -- learned keywords ---------------------------------------------------------------------------


def learning_batch() -> list[Paper]:
    fish = [paper(f"alpha {i}", "Zebrafish swim.", id=f"a{i}") for i in range(6)]
    sky = [paper(f"beta {i}", "A quasar shines.", id=f"b{i}") for i in range(6)]
    return [
        *fish,
        *sky,
        paper("alpha and beta", "A quasar.", id="x"),
        paper("Galaxy", "A quasar.", id="o"),
    ]


def test_learned_keywords_tip_a_close_call_between_topics_the_rules_found() -> None:
    topics = [topic("Fish", "alpha"), topic("Sky", "beta")]
    background = table(1000, alpha=10, beta=10)
    on = GroupingConfig(learned_weight=0.5)
    m = TopicMatcher(topics, on, table=background, breadth=0)
    got = {a.paper_id: a for a in assign_all(learning_batch(), m)}
    assert got["x"].topic == "Sky"
    learned = [h for h in got["x"].hits if h.field == "learned"]
    assert [h.keyword for h in learned] == ["quasar"] and learned[0].gain > 0
    assert got["o"].topic == OTHER  # a learned word never pulls a paper out of Other
    text = explain(paper("alpha and beta", "A quasar.", id="x"), got["x"])
    assert '"quasar" in the text (learned)' in text
    off = TopicMatcher(topics, table=background, breadth=0)  # off by default
    assert {a.paper_id: a.topic for a in assign_all(learning_batch(), off)}["x"] == "Fish"


# -- exclude, require, ties, Other ----------------------------------------------------------------


def test_exclude_rules_the_topic_out() -> None:
    m = matcher(
        topic("Diffusion", "diffusion", exclude=("heat equation",)),
        topic("Physics", "heat equation"),
    )
    a = m.assign(paper("Diffusion everywhere", "We solve the heat equation."))
    assert a.topic == "Physics"
    ruled = next(s for s in a.scores if s.topic == "Diffusion")
    assert ruled.excluded_by == "heat equation" and ruled.score == 0
    assert topic_of(m, "Diffusion everywhere", "We sample images.") == "Diffusion"


def test_require_rules_the_topic_out_unless_one_word_appears() -> None:
    m = matcher(topic("Diffusion", "diffusion", require=("image", "generative")))
    without = m.assign(paper("Anomalous diffusion in gels", "A lattice model."))
    assert without.topic == OTHER
    assert without.scores[0].missing_require
    assert topic_of(m, "Anomalous diffusion", "Generative models of images.") == "Diffusion"


def test_require_word_inside_a_longer_keyword_still_counts() -> None:
    m = matcher(topic("Gen", "image generation", require=("image",)))
    assert topic_of(m, "Fast image generation") == "Gen"


def test_tie_goes_to_the_topic_listed_first() -> None:
    first, second = topic("First", "agent"), topic("Second", "robot")
    text = "An agent and a robot"
    assert topic_of(matcher(first, second), text) == "First"
    assert topic_of(matcher(second, first), text) == "Second"


def test_below_min_score_goes_to_other_with_the_closest_topic() -> None:
    g = GroupingConfig()
    m = matcher(topic("T", "agent"), min_score=g.abstract_weight * 1.5)
    a = m.assign(paper("Unrelated", "One agent."))
    assert a.topic == OTHER and a.topics == (OTHER,)
    assert a.runner_up is not None and a.runner_up.topic == "T"
    assert topic_of(m, "An agent") == "T"


def test_nothing_matching_goes_to_other() -> None:
    a = matcher(topic("T", "agent")).assign(paper("Galaxies", "Stars form."))
    assert (a.topic, a.scores, a.runner_up) == (OTHER, (), None)


# -- multi-topic --------------------------------------------------------------------------------


def test_multi_topic_adds_close_seconds_up_to_max_topics() -> None:
    topics = (topic("A", "agent"), topic("B", "robot"), topic("C", "speech"))
    p = paper("An agent", "A robot. Another robot. Speech.")  # A: title; B: twice; C: once
    single = matcher(*topics).assign(p)
    assert single.topics == ("A",)
    multi = matcher(*topics, multi_topic=True, max_topics=2, secondary_ratio=0.5).assign(p)
    assert multi.topics == ("A", "B")
    three = matcher(*topics, multi_topic=True, max_topics=3, secondary_ratio=0.3).assign(p)
    assert three.topics == ("A", "B", "C")
    strict = matcher(*topics, multi_topic=True, max_topics=3, secondary_ratio=1.0).assign(p)
    assert strict.topics == ("A",)


def test_assign_all_keeps_input_order() -> None:
    m = compile_topics([topic("A", "agent"), topic("B", "robot")])
    got = assign_all([paper("robot", id="1"), paper("agent", id="2")], m)
    assert [(a.paper_id, a.topic) for a in got] == [("1", "B"), ("2", "A")]


# -- explanations and errors --------------------------------------------------------------------


def test_explain_names_the_keyword_field_and_runner_up() -> None:
    m = matcher(topic("Agents", "agent"), topic("Robots", "robot"))
    p = paper("Agents for robots", "An agent. An agent.", id="2401.00001")
    text = explain(p, m.assign(p))
    assert "2401.00001" in text and "Agents for robots" in text
    assert "-> Agents (score 2.61)" in text  # 1 + ln(3 + 2): title and abstract pooled
    assert '"agent" in title, abstract x2 (weight 1.00, +2.61)' in text
    assert 'runner-up: Robots (score 2.10) from "robot" in title (weight 1.00, +2.10)' in text


def test_explain_other_and_ruled_out_topics() -> None:
    m = matcher(topic("Gen", "diffusion", require=("image",)), topic("Bio", "protein"))
    p = paper("Diffusion of a protein", id="x")
    lines = explain(p, m.assign(p)).splitlines()
    assert lines[1] == "-> Bio (score 2.10)"
    assert any("ruled out: Gen" in line and "required" in line for line in lines)
    nothing = explain(paper("Galaxies", id="y"), m.assign(paper("Galaxies", id="y")))
    assert f"-> {OTHER}" in nothing and "no keyword" in nothing


def test_keyword_without_letters_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Bad.*'--'"):
        TopicMatcher([topic("Bad", "--")])


def test_duplicate_or_reserved_topic_names_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        TopicMatcher([topic("A", "x"), topic("a", "y")])
    with pytest.raises(ConfigError):
        TopicMatcher([topic("Other", "x")])


def test_spelling_a_keyword_twice_does_not_count_it_twice() -> None:
    once = matcher(topic("T", "LLM")).assign(paper("", "LLMs"))
    twice = matcher(topic("T", "LLM", "LLMs")).assign(paper("", "LLMs"))
    assert twice.score == once.score


# -- properties ---------------------------------------------------------------------------------

# Keywords use letters a-m, filler text n-z without "s" and "y": no filler word can be a keyword,
# its plural, or its singular.
KEYWORD = st.text(alphabet="abcdefghijklm", min_size=2, max_size=10)
FILLER = st.text(alphabet="nopqrtuvwxz", min_size=1, max_size=8)
SEPARATOR = st.sampled_from([" ", "  ", "-", " - ", "\n", "\u2010"])
CASE = st.sampled_from([str.lower, str.upper, str.title, str.swapcase])


def english_plural(word: str) -> str:
    """The regular English plural, as a reader writes it ("patch" -> "patches")."""
    return word + ("es" if word.endswith(("s", "x", "z", "ch", "sh")) else "s")


@pytest.mark.parametrize(
    ("kw", "plural"),
    [("patch", "patches"), ("box", "boxes"), ("flash", "flashes"), ("agent", "agents")],
)
def test_english_plural_is_matched(kw: str, plural: str) -> None:
    assert english_plural(kw) == plural
    assert matcher(topic("T", kw)).assign(paper(f"Many {plural} here")).topic == "T"


@given(KEYWORD, st.lists(FILLER, max_size=6), st.lists(FILLER, max_size=6), CASE, st.booleans())
def test_property_keyword_as_a_whole_word_is_matched(kw, before, after, case, plural) -> None:
    word = case(english_plural(kw) if plural else kw)
    title = " ".join([*before, f"({word})" if before else word, *after])
    a = matcher(topic("T", kw)).assign(paper(title))
    assert a.topic == "T"
    assert a.hits[0].field == "title" and a.hits[0].count == 1


@given(KEYWORD, KEYWORD, SEPARATOR, st.lists(FILLER, max_size=4))
def test_property_phrase_matches_across_any_space_or_hyphen(first, second, sep, filler) -> None:
    title = " ".join([*filler, first.upper() + sep + second])
    assert topic_of(matcher(topic("T", f"{first} {second}")), title) == "T"


@given(KEYWORD, FILLER, FILLER, st.sampled_from(["both", "prefix", "suffix"]))
def test_property_keyword_inside_another_word_never_matches(kw, pre, post, where) -> None:
    word = {"both": pre + kw + post, "prefix": pre + kw, "suffix": kw + post}[where]
    assert topic_of(matcher(topic("T", kw)), f"On {word} today", word) == OTHER


VOCAB = ["agent", "agents", "robot", "speech", "model", "diffusion", "of", "the", "LLMs", "Art"]


@settings(max_examples=50)
@given(st.lists(st.sampled_from(VOCAB), max_size=12), st.lists(st.sampled_from(VOCAB), max_size=40))
def test_property_result_is_invariant_to_case(title_words, abstract_words) -> None:
    m = matcher(
        topic("Agents", "agent", "llm"),
        topic("Robots", "robot", "art"),
        topic("Gen", "diffusion model", "diffusion"),
        topic("Speech", "speech"),
    )
    title, abstract = " ".join(title_words), " ".join(abstract_words)
    base = m.assign(paper(title, abstract))
    for change in (str.upper, str.lower, str.swapcase):
        other = m.assign(paper(change(title), change(abstract)))
        assert (other.topic, other.score, other.hits) == (base.topic, base.score, base.hits)


# -- the default topics on real pages -----------------------------------------------------------


@pytest.fixture
def default_matcher() -> TopicMatcher:
    """A fresh matcher per test: assigning a batch grows its background (the batch counts)."""
    config = load_config(REPO / "config.yaml")
    assert 8 <= len(config.topics) <= 14
    return compile_topics(config.topic_rules, config.grouping)


@pytest.mark.parametrize(
    ("sample", "count"), [("daily-papers-page.txt", 83), ("hf-daily-papers-api.json", 30)]
)
def test_default_topics_leave_at_most_15_percent_of_a_sample_in_other(
    default_matcher: TopicMatcher, sample: str, count: int
) -> None:
    papers = read_source(str(SAMPLES / sample))
    assert len(papers) == count
    topics = [a.topic for a in assign_all(papers, default_matcher)]
    assert topics.count(OTHER) <= math.floor(0.15 * count), topics
    assert len(set(topics)) >= 6  # spread over the topics, not piled into one


def test_default_topics_on_familiar_titles(default_matcher: TopicMatcher) -> None:
    expected = {
        "Plan-and-Solve Prompting: Improving Zero-Shot Chain-of-Thought Reasoning": "LLM Reasoning",
        "WebChallenger: A Reliable and Efficient Generalist Web Agent": "Agents & Tool Use",
        "Learning Few-Step Diffusion Models by Trajectory Distribution Matching": (
            "Diffusion & Image Generation"
        ),
        "Streaming Text-to-Speech with Low-Latency Neural Codecs": "Speech & Audio",
        "Sim-to-Real Transfer for Quadruped Locomotion": "Robotics & Reinforcement Learning",
        "Frequency of Hot Jupiters from the OGLE-III Transit Surveys": OTHER,
    }
    got = {title: default_matcher.assign(paper(title)).topic for title in expected}
    assert got == expected


def test_default_topics_agree_with_the_hand_labels_of_the_sample(
    default_matcher: TopicMatcher,
) -> None:
    text = (DATA / "sample-topics.jsonl").read_text(encoding="utf-8")
    labels = [json.loads(line) for line in text.splitlines()]
    papers = read_source(str(SAMPLES / "daily-papers-page.txt"))
    assert [p.id for p in papers] == [x["id"] for x in labels]
    got = {a.paper_id: a.topic for a in assign_all(papers, default_matcher)}
    agree = [x for x in labels if got[x["id"]] == x["topic"]]
    assert len(agree) >= math.ceil(0.85 * len(labels)), [
        (x["title"], x["topic"], got[x["id"]]) for x in labels if x not in agree
    ]
    swissnyf = next(x for x in labels if x["title"].startswith("SwissNYF"))
    assert swissnyf["topic"] == got[swissnyf["id"]] == "Agents & Tool Use"


def test_default_topics_tell_the_model_clip_from_the_verb(default_matcher: TopicMatcher) -> None:
    assert default_matcher.assign(paper("Zero-shot probes of CLIP features")).topic == (
        "Multimodal & Video"
    )
    assert default_matcher.assign(paper("We clip gradients to stabilise training")).topic == OTHER
