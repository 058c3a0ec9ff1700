"""Pure parts of labeling: schema validation, answer parsing, purity rules, scrambling."""

from __future__ import annotations

import json

import pytest

from aig.labeling import purity, schema
from aig.labeling.records import answer_text, conversation, extract_json, parse_answer
from aig.labeling.scramble import ScrambleRanges, draw_recipe, scramble


def test_schema_normalises_and_rejects():
    ann, repaired = schema.from_dict({"verdict": "inconsistent", "inconsistencies": [
        {"category": "Text", "description": " garbled sign ", "confidence": 80}]})
    assert repaired and ann.inconsistencies[0].category == "text_and_glyphs"
    assert ann.inconsistencies[0].confidence == 0.8 and ann.inconsistencies[0].description == "garbled sign"
    ann, repaired = schema.from_dict({"verdict": "consistent", "inconsistencies": []})
    assert not repaired and ann.verdict == "consistent"
    with pytest.raises(schema.SchemaError):
        schema.from_dict({"verdict": "maybe", "inconsistencies": []})
    with pytest.raises(schema.SchemaError):
        schema.from_dict({"verdict": "inconsistent", "inconsistencies": [{"description": "x", "confidence": 7000}]})
    with pytest.raises(schema.SchemaError):
        schema.from_dict(["not", "an", "object"])


@pytest.mark.parametrize("text, verdict, status, n", [
    ('{"verdict": "fake", "inconsistencies": [{"category": "anatomy", "description": "six fingers"}]}', "fake", "ok", 1),
    ('```json\n{"verdict": "real", "inconsistencies": []}\n```', "real", "repaired", 0),
    ('{"verdict": "real", "inconsistencies": [],}', "real", "repaired", 0),
    ('{"verdict": "fake", "inconsistencies": [{"category": "anatomy", "description": "six fing', "fake", "repaired", 1),
    ("It is fake.", "fake", "repaired", 0),
    ("I cannot tell whether it is real or fake.", None, "invalid", 0),
    ("", None, "invalid", 0),
])
def test_parse_answer(text, verdict, status, n):
    p = parse_answer(text)
    assert (p.verdict, p.status, len(p.inconsistencies)) == (verdict, status, n)


def test_answer_roundtrip_and_conversation():
    named = [{"category": "physics", "description": "two shadows"}]
    assert parse_answer(answer_text("fake", named)).inconsistencies == named
    msgs = conversation("real", [])
    assert msgs[0]["content"][0] == {"type": "image"} and json.loads(msgs[1]["content"][0]["text"])["verdict"] == "real"
    with pytest.raises(ValueError):
        answer_text("maybe", [])
    assert extract_json("no json here") == (None, False)


def test_purity_truth_table():
    rules = purity.PurityRules(min_confidence=0.5)
    strong = schema.Annotation("inconsistent", [schema.Inconsistency("anatomy", "x", 0.9)])
    weak = schema.Annotation("inconsistent", [schema.Inconsistency("anatomy", "x", 0.2)])
    clean = schema.Annotation("consistent", [])
    assert purity.decide("fake", strong, rules)[0] == "accepted"
    assert purity.decide("fake", clean, rules)[0] == "excluded"
    # the verdict says inconsistent but nothing reaches min_confidence: the conservative decision
    assert purity.decide("fake", weak, rules)[0] == "excluded"
    assert purity.decide("real", weak, rules)[0] == "quarantined"
    assert purity.decide("real", clean, rules)[0] == "accepted"
    assert purity.decide("real", strong, rules)[0] == "quarantined"
    assert purity.decide("real", strong, purity.PurityRules(quarantine_inconsistent_reals=False))[0] == "accepted"
    assert purity.decide("fake", strong, purity.PurityRules(min_inconsistencies=2))[0] == "excluded"
    assert purity.decide("fake", None, rules)[0] == "invalid"


def test_purity_verdict_and_findings_disagree():
    rules = purity.PurityRules(min_confidence=0.5)
    finding = schema.Inconsistency("anatomy", "x", 0.9)
    weak = schema.Annotation("inconsistent", [schema.Inconsistency("anatomy", "x", 0.2)])  # nothing counted
    bare = schema.Annotation("inconsistent", [])
    named_but_consistent = schema.Annotation("consistent", [finding])
    cases = [("real", weak, rules, "quarantined"), ("real", bare, rules, "quarantined"),
             ("real", bare, purity.PurityRules(quarantine_inconsistent_reals=False), "quarantined"),
             ("real", named_but_consistent, rules, "quarantined"),
             ("fake", weak, rules, "excluded"), ("fake", bare, rules, "excluded"),
             ("fake", named_but_consistent, rules, "excluded")]
    for label, annotation, r, decision in cases:
        got, reason = purity.decide(label, annotation, r)
        assert got == decision and reason.startswith(purity.DISAGREE), (label, annotation, got, reason)
        assert f"verdict {annotation.verdict}," in reason


def test_purity_reason_never_contradicts_the_verdict():
    import itertools

    finding = schema.Inconsistency("anatomy", "x", 0.9)
    implies = {"semantically faithful": "consistent", "real image, consistent": "consistent",
               "named semantic inconsistencies": "inconsistent", "called inconsistent": "inconsistent",
               "named inconsistencies, fewer": "inconsistent"}
    for label, verdict, n, quarantine, least in itertools.product(("real", "fake"), schema.VERDICTS, (0, 1, 2),
                                                                  (True, False), (1, 2)):
        rules = purity.PurityRules(min_inconsistencies=least, quarantine_inconsistent_reals=quarantine)
        decision, reason = purity.decide(label, schema.Annotation(verdict, [finding] * n), rules)
        if (n > 0) != (verdict == "inconsistent"):
            assert reason.startswith(f"{purity.DISAGREE}: verdict {verdict},")
            assert decision == {"real": "quarantined", "fake": "excluded"}[label]
        else:
            assert [implies[p] for p in implies if p in reason] == [verdict], (verdict, reason)
        if decision == "accepted":
            assert verdict == ("inconsistent" if label == "fake" else "consistent") or not quarantine


def test_scramble_is_deterministic_and_destroys_pixels():
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (128, 160, 3), dtype=np.uint8))
    r = draw_recipe("k1", ScrambleRanges())
    assert r == draw_recipe("k1", ScrambleRanges()) and r != draw_recipe("k2", ScrambleRanges())
    a, b = scramble(img, r), scramble(img, r)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.width <= 0.5 * 160 + 1 and 30 <= r["jpeg_quality"] <= 70
