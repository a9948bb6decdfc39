"""The platform-neutral gate: allow lists, the per-user sliding window, one notice per window."""

from __future__ import annotations

from hermes_bot.adapters.gate import Decision, Gate, Origin, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_allow_lists_must_all_match_and_threads_inherit_their_parent_channel():
    gate = Gate(workspaces=[1], channels=[5], roles=[7], limit=5, window=30)
    assert gate.allows(Origin(9, 1, (6, 5), (7,)))
    assert not gate.allows(Origin(9, 2, (5,), (7,)))
    assert not gate.allows(Origin(9, 1, (6,), (7,)))
    assert not gate.allows(Origin(9, 1, (5,), (8,)))
    assert not gate.allows(Origin(9, None, (5,), ()))
    assert Gate(limit=5, window=30).allows(Origin(9, None, (3,), ()))


def test_user_lists_and_slack_style_string_identifiers():
    gate = Gate(workspaces=["T1"], users=["U2"], limit=5, window=30)
    assert gate.allows(Origin("U2", "T1", ("C1",)))
    assert not gate.allows(Origin("U3", "T1", ("C1",)))
    assert not gate.allows(Origin("U2", "T9", ("C1",)))
    assert gate.check(Origin("U3", "T1", ("C1",))) == Decision(Verdict.DENY)


def test_a_denied_origin_is_not_counted_against_the_rate_limit():
    gate = Gate(users=[1], limit=1, window=10)
    assert gate.check(Origin(2, None, ())).verdict is Verdict.DENY
    assert gate.check(Origin(2, None, ())).verdict is Verdict.DENY
    assert gate.check(Origin(1, None, ())).verdict is Verdict.ANSWER


def test_rate_limit_is_a_sliding_window_per_user():
    clock = Clock()
    gate = Gate(limit=2, window=10.0, clock=clock)
    assert gate.admit(1) == Decision(Verdict.ANSWER)
    clock.now = 4.0
    assert gate.admit(1) == Decision(Verdict.ANSWER)
    assert gate.admit(2) == Decision(Verdict.ANSWER)
    clock.now = 6.0
    assert gate.admit(1) == Decision(Verdict.COOLDOWN_NOTICE, 4.0)
    clock.now = 10.0
    assert gate.admit(1) == Decision(Verdict.ANSWER)
    assert gate.admit(1) == Decision(Verdict.COOLDOWN_NOTICE, 4.0)


def test_a_refused_user_is_told_once_per_window_then_only_marked():
    clock = Clock()
    gate = Gate(limit=1, window=10.0, clock=clock)
    assert gate.admit(1).verdict is Verdict.ANSWER
    verdicts = []
    for second in range(1, 10):
        clock.now = float(second)
        verdicts.append(gate.admit(1).verdict)
    assert verdicts == [Verdict.COOLDOWN_NOTICE] + [Verdict.COOLDOWN_MARK] * 8
    assert gate.admit(2).verdict is Verdict.ANSWER  # other users are unaffected
    clock.now = 10.0
    assert gate.admit(1).verdict is Verdict.ANSWER
    clock.now = 11.0
    assert gate.admit(1) == Decision(Verdict.COOLDOWN_NOTICE, 9.0)  # a new window, told again


def test_idle_users_are_forgotten_once_there_are_many():
    clock = Clock()
    gate = Gate(limit=1, window=10.0, clock=clock)
    for user in range(10_000):
        gate.admit(user)
    gate.admit(0)
    clock.now = 20.0
    gate.admit("new")
    assert len(gate._events) == 1


def test_the_cooldown_notice_says_the_limit_and_when_to_retry():
    gate = Gate(limit=5, window=30.0)
    assert gate.cooldown_notice(12.2) == (
        "⏳ You're sending messages too quickly (limit: 5 every 30 s). Try again in 13 s."
    )
    assert gate.cooldown_notice(0.0).endswith("Try again in 1 s.")
