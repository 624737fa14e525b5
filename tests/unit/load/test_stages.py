from __future__ import annotations

from inferswarm.load import LoadContext, StagesLoad, StageSpec

CONTEXT = LoadContext(capabilities=("a",), longest_timeout_s=10.0)


def test_explicit_stages_default_spawn_rate_reaches_target_in_one_second() -> None:
    load = StagesLoad(
        shape="stages",
        stages=[
            StageSpec(duration_s=5, users=10),
            StageSpec(duration_s=5, users=4, spawn_rate=1, name="cool"),
            StageSpec(duration_s=2, users=4),
        ],
    )
    stages = load.plan(CONTEXT)
    assert [(s.name, s.users, s.spawn_rate, s.start_s) for s in stages] == [
        ("stage 1", 10, 10.0, 0),
        ("cool", 4, 1.0, 5),
        ("stage 3", 4, 1.0, 10),
    ]
    assert load.describe(CONTEXT) == "load: stages, 3 stages, up to 10 users, 12 s"
