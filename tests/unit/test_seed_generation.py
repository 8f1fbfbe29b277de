"""The seed's generated data keeps the rules it will be loaded through, at every scale the benchmarks use
(loading scale 10 once failed on a self-grant that scale 1 never drew)."""

from __future__ import annotations

import datetime as dt

import pytest

from platformdb.workbench.seed.dataset import generate

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("scale", [1, 10])
def test_no_seeded_grant_is_self_granted(scale: int) -> None:
    data = generate(scale, 1, NOW)
    assert data.grants
    assert [g for g in data.grants if g.granted_by == g.user_id] == []


def test_seeded_teams_nest_without_cycles() -> None:
    teams = {t.id: t for t in generate(10, 1, NOW).teams}
    assert any(t.parent_team_id for t in teams.values())
    for team in teams.values():
        seen, at = set(), team
        while at.parent_team_id is not None:
            assert at.id not in seen
            seen.add(at.id)
            at = teams[at.parent_team_id]
