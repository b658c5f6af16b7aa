"""Pure tests of the ``--reload`` lifecycle table: every row of `devserve.policy._TABLE`.

No processes and no clocks: each test builds a `ReloadPolicy` in some phase with plain
inputs, applies one more input and compares the returned actions and the new state.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from devserve.errors import PolicyError
from devserve.policy import (
    _TABLE,
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    STAND_IN_MIN_S,
    Action,
    BackoffElapsed,
    FilesChanged,
    Finished,
    Input,
    Kill,
    Phase,
    ReloadFinished,
    ReloadPolicy,
    Spawn,
    SpawnCrashPage,
    StartBackoff,
    StopRequested,
    Strategy,
    Terminate,
    WorkerCrashed,
    WorkerExited,
    WorkerReady,
)

INPUT_TYPES: tuple[type, ...] = typing.get_args(Input)

# -- building a policy in each phase ---------------------------------------------------------


def starting_first() -> ReloadPolicy:
    """STARTING with no live worker: generation 1 was just spawned at t=0."""
    policy = ReloadPolicy()
    assert policy.start(0.0) == [Spawn(1)]
    return policy


def serving(strategy: Strategy = Strategy.SWAP) -> ReloadPolicy:
    """SERVING with generation 1 live (ready at t=0.5)."""
    policy = ReloadPolicy(strategy=strategy)
    policy.start(0.0)
    policy.apply(WorkerReady(1, 0.5))
    assert (policy.phase, policy.live, policy.pending) == (Phase.SERVING, 1, None)
    return policy


def starting() -> ReloadPolicy:
    """STARTING with generation 1 live and generation 2 pending (a.py changed at t=1)."""
    policy = serving()
    assert policy.apply(FilesChanged(("a.py",), 1.0)) == [Spawn(2)]
    return policy


def restarting() -> ReloadPolicy:
    """RESTARTING: the restart strategy is draining generation 1 before spawning."""
    policy = serving(Strategy.RESTART)
    assert policy.apply(FilesChanged(("a.py",), 1.0)) == [Terminate(1)]
    return policy


def backoff() -> ReloadPolicy:
    """BACKOFF after the live generation 1 crashed (token 1, nothing draining)."""
    policy = serving()
    policy.apply(WorkerExited(1, -9))
    assert (policy.phase, policy.backoff_token, policy.draining) == (Phase.BACKOFF, 1, set())
    return policy


def backoff_with_draining() -> ReloadPolicy:
    """BACKOFF while generation 1 drains: generation 2 replaced it, then crashed."""
    policy = starting()
    policy.apply(WorkerReady(2, 1.5))
    policy.apply(WorkerExited(2, 1))
    assert (policy.phase, policy.draining) == (Phase.BACKOFF, {1})
    return policy


def stopping() -> ReloadPolicy:
    """STOPPING while generation 1 drains."""
    policy = serving()
    assert policy.apply(StopRequested()) == [Terminate(1)]
    return policy


def done() -> ReloadPolicy:
    """DONE: stopped and every worker exited."""
    policy = stopping()
    assert policy.apply(WorkerExited(1, 0)) == [Finished()]
    return policy


# -- every row of the table --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One (phase, input) rule: the starting state, the input and what must come out."""

    build: Callable[[], ReloadPolicy]
    phase: Phase
    event: Input
    actions: list[Action]
    after: Phase

    @property
    def key(self) -> tuple[Phase, type]:
        return (self.phase, type(self.event))

    def __str__(self) -> str:
        return f"{self.phase.name}-{type(self.event).__name__}"


P = Phase
ROWS = [
    # SERVING
    Row(serving, P.SERVING, FilesChanged(("a.py",), 1.0), [Spawn(2)], P.STARTING),
    Row(serving, P.SERVING, WorkerReady(9, 1.0), [], P.SERVING),
    Row(
        serving,
        P.SERVING,
        WorkerExited(1, -9),
        [WorkerCrashed(1, -9, BACKOFF_FIRST_S), StartBackoff(BACKOFF_FIRST_S, 1)],
        P.BACKOFF,
    ),
    Row(serving, P.SERVING, StopRequested(), [Terminate(1)], P.STOPPING),
    Row(serving, P.SERVING, BackoffElapsed(0), [], P.SERVING),
    # STARTING (1 live, 2 pending)
    Row(starting, P.STARTING, FilesChanged(("b.py",), 1.2), [Terminate(2), Spawn(3)], P.STARTING),
    Row(
        starting,
        P.STARTING,
        WorkerReady(2, 1.5),
        [Terminate(1), ReloadFinished(2, 500.0, ("a.py",), is_broken=False)],
        P.SERVING,
    ),
    Row(starting, P.STARTING, WorkerExited(2, 1), [WorkerCrashed(2, 1, None)], P.SERVING),
    Row(starting, P.STARTING, StopRequested(), [Terminate(1), Terminate(2)], P.STOPPING),
    Row(starting, P.STARTING, BackoffElapsed(0), [], P.STARTING),
    # RESTARTING (1 draining)
    Row(restarting, P.RESTARTING, FilesChanged(("b.py",), 1.1), [], P.RESTARTING),
    Row(restarting, P.RESTARTING, WorkerReady(1, 1.1), [], P.RESTARTING),
    Row(restarting, P.RESTARTING, WorkerExited(1, 0), [Spawn(2)], P.STARTING),
    Row(restarting, P.RESTARTING, StopRequested(), [], P.STOPPING),
    Row(restarting, P.RESTARTING, BackoffElapsed(0), [], P.RESTARTING),
    # BACKOFF
    Row(backoff, P.BACKOFF, FilesChanged(("a.py",), 2.0), [Spawn(2)], P.STARTING),
    Row(backoff, P.BACKOFF, WorkerReady(1, 2.0), [], P.BACKOFF),
    Row(backoff_with_draining, P.BACKOFF, WorkerExited(1, 0), [], P.BACKOFF),
    Row(backoff, P.BACKOFF, StopRequested(), [Finished()], P.DONE),
    Row(backoff, P.BACKOFF, BackoffElapsed(1), [Spawn(2)], P.STARTING),
    # STOPPING (1 draining)
    Row(stopping, P.STOPPING, FilesChanged(("a.py",), 2.0), [], P.STOPPING),
    Row(stopping, P.STOPPING, WorkerReady(1, 2.0), [], P.STOPPING),
    Row(stopping, P.STOPPING, WorkerExited(1, 0), [Finished()], P.DONE),
    Row(stopping, P.STOPPING, StopRequested(), [Kill(1)], P.STOPPING),
    Row(stopping, P.STOPPING, BackoffElapsed(0), [], P.STOPPING),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_row(row: Row) -> None:
    policy = row.build()
    assert policy.phase is row.phase
    assert policy.apply(row.event) == row.actions
    assert policy.phase is row.after


def test_rows_walk_the_whole_table() -> None:
    keys = [row.key for row in ROWS]
    assert len(keys) == len(set(keys)), "a row is listed twice"
    assert set(keys) == set(_TABLE)


@pytest.mark.parametrize("phase", [phase for phase in Phase if phase is not Phase.DONE])
@pytest.mark.parametrize("input_type", INPUT_TYPES, ids=lambda t: t.__name__)
def test_every_live_phase_has_a_rule_for_every_input(phase: Phase, input_type: type) -> None:
    assert (phase, input_type) in _TABLE


def test_done_has_no_rules() -> None:
    assert not [key for key in _TABLE if key[0] is Phase.DONE]


# -- swap reloads -------------------------------------------------------------------------


def test_first_start_reports_ready_with_time_from_start() -> None:
    policy = ReloadPolicy()
    assert policy.start(10.0) == [Spawn(1)]
    assert (policy.phase, policy.pending, policy.live) == (Phase.STARTING, 1, None)
    [finished] = policy.apply(WorkerReady(1, 10.2))
    assert isinstance(finished, ReloadFinished)
    assert finished.generation == 1
    assert finished.duration_ms == pytest.approx(200.0)
    assert finished.paths == ()
    assert (policy.phase, policy.live, policy.pending) == (Phase.SERVING, 1, None)


def test_swap_reload_spawns_then_terminates_old_once_ready() -> None:
    policy = serving()
    assert policy.apply(FilesChanged(("b.py", "a.py"), 10.0)) == [Spawn(2)]
    assert (policy.live, policy.pending, policy.draining) == (1, 2, set())
    actions = policy.apply(WorkerReady(2, 10.25))
    assert actions == [Terminate(1), ReloadFinished(2, 250.0, ("a.py", "b.py"), is_broken=False)]
    assert (policy.live, policy.pending, policy.draining) == (2, None, {1})
    assert policy.apply(WorkerExited(1, 0)) == []
    assert policy.draining == set()
    assert policy.phase is Phase.SERVING


def test_reload_without_paths_sighup() -> None:
    policy = serving()
    assert policy.apply(FilesChanged((), 3.0)) == [Spawn(2)]
    [terminate, finished] = policy.apply(WorkerReady(2, 3.1))
    assert terminate == Terminate(1)
    assert isinstance(finished, ReloadFinished)
    assert (finished.generation, finished.paths) == (2, ())
    assert finished.duration_ms == pytest.approx(100.0)


def test_duration_never_negative() -> None:
    policy = serving()
    policy.apply(FilesChanged(("a.py",), 5.0))
    [_, finished] = policy.apply(WorkerReady(2, 4.0))
    assert isinstance(finished, ReloadFinished)
    assert finished.duration_ms == 0.0


def test_supersede_while_starting_merges_paths_and_keeps_first_change_time() -> None:
    policy = serving()
    assert policy.apply(FilesChanged(("a.py",), 1.0)) == [Spawn(2)]
    assert policy.apply(FilesChanged(("c.py", "a.py"), 1.1)) == [Terminate(2), Spawn(3)]
    assert policy.apply(FilesChanged(("b.py",), 1.2)) == [Terminate(3), Spawn(4)]
    assert (policy.live, policy.pending, policy.draining) == (1, 4, {2, 3})
    # The superseded generations report late: stale, ignored.
    assert policy.apply(WorkerReady(2, 1.3)) == []
    assert policy.apply(WorkerExited(3, 0)) == []
    actions = policy.apply(WorkerReady(4, 1.5))
    assert actions == [
        Terminate(1),
        ReloadFinished(4, 500.0, ("a.py", "b.py", "c.py"), is_broken=False),
    ]
    assert policy.draining == {1, 2}
    assert policy.apply(WorkerExited(2, 0)) == []
    assert policy.apply(WorkerExited(1, 0)) == []
    assert (policy.phase, policy.live, policy.draining) == (Phase.SERVING, 4, set())


def test_change_during_first_start_supersedes_it() -> None:
    policy = starting_first()
    assert policy.apply(FilesChanged(("a.py",), 0.5)) == [Terminate(1), Spawn(2)]
    [finished] = policy.apply(WorkerReady(2, 1.0))
    assert finished == ReloadFinished(2, 1000.0, ("a.py",), is_broken=False)


def test_broken_ready_is_served_and_replaced_on_next_save() -> None:
    policy = starting()
    actions = policy.apply(WorkerReady(2, 1.5, is_broken=True))
    assert actions == [Terminate(1), ReloadFinished(2, 500.0, ("a.py",), is_broken=True)]
    assert (policy.phase, policy.live) == (Phase.SERVING, 2)
    assert policy.apply(FilesChanged(("a.py",), 3.0)) == [Spawn(3)]
    actions = policy.apply(WorkerReady(3, 3.25))
    assert actions == [Terminate(2), ReloadFinished(3, 250.0, ("a.py",), is_broken=False)]


# -- restart strategy ---------------------------------------------------------------------


def test_restart_drains_first_and_spawns_when_drained() -> None:
    policy = serving(Strategy.RESTART)
    assert policy.apply(FilesChanged(("a.py",), 2.0)) == [Terminate(1)]
    assert (policy.phase, policy.live, policy.pending, policy.draining) == (
        Phase.RESTARTING,
        None,
        None,
        {1},
    )
    assert policy.apply(FilesChanged(("b.py",), 2.1)) == []
    assert policy.apply(WorkerReady(1, 2.2)) == []
    assert policy.apply(WorkerExited(1, 0)) == [Spawn(2)]
    assert policy.phase is Phase.STARTING
    # Nothing live to terminate; the duration counts from the first change.
    actions = policy.apply(WorkerReady(2, 2.5))
    assert actions == [ReloadFinished(2, 500.0, ("a.py", "b.py"), is_broken=False)]
    assert (policy.phase, policy.live) == (Phase.SERVING, 2)


def test_restart_with_unknown_exit_keeps_waiting() -> None:
    policy = restarting()
    assert policy.apply(WorkerExited(7, 0)) == []
    assert (policy.phase, policy.draining) == (Phase.RESTARTING, {1})


def test_restart_stop_while_draining_finishes_when_drained() -> None:
    policy = restarting()
    assert policy.apply(StopRequested()) == []
    assert policy.apply(StopRequested()) == [Kill(1)]
    assert policy.apply(WorkerExited(1, -9)) == [Finished()]
    assert policy.phase is Phase.DONE


def test_restart_supersede_while_starting_still_drains_first() -> None:
    policy = restarting()
    policy.apply(WorkerExited(1, 0))
    assert policy.phase is Phase.STARTING
    # Generation 2 is starting; a new save must drain it before spawning 3.
    assert policy.apply(FilesChanged(("b.py",), 2.0)) == [Terminate(2)]
    assert policy.apply(WorkerExited(2, 0)) == [Spawn(3)]


# -- crashes and backoff ------------------------------------------------------------------


def test_crash_loop_backs_off_exponentially_capped() -> None:
    policy = serving()
    delays: list[float] = []
    actions = policy.apply(WorkerExited(1, -9))
    for _ in range(9):
        crashed, timer = actions[:2]
        assert isinstance(crashed, WorkerCrashed)
        assert isinstance(timer, StartBackoff)
        assert crashed.retry_in_s == timer.delay_s
        assert timer.token == policy.backoff_token
        delays.append(timer.delay_s)
        actions = retry_then_crash(policy, timer.token)
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
    assert max(delays) == BACKOFF_MAX_S


def retry_then_crash(policy: ReloadPolicy, token: int) -> list[Action]:
    """The backoff fires, the retry gets ready (any stand-in drains), then it crashes."""
    actions = policy.apply(BackoffElapsed(token))
    spawn = actions[-1]
    assert isinstance(spawn, Spawn)
    policy.apply(WorkerReady(spawn.generation, 9.0))
    for generation in sorted(policy.draining):
        policy.apply(WorkerExited(generation, 0))
    return policy.apply(WorkerExited(spawn.generation, 1))


def test_a_crash_page_stands_in_only_during_long_backoffs() -> None:
    policy = serving()
    actions = policy.apply(WorkerExited(1, 1))
    pages: list[SpawnCrashPage] = []
    for _ in range(5):
        timer = actions[1]
        assert isinstance(timer, StartBackoff)
        extra = actions[2:]
        assert bool(extra) == (timer.delay_s >= STAND_IN_MIN_S), actions
        pages.extend(a for a in extra if isinstance(a, SpawnCrashPage))
        actions = retry_then_crash(policy, timer.token)
    assert [page.retry_in_s for page in pages] == pytest.approx([0.8, 1.6])
    assert all(page.code == 1 for page in pages)


def test_crash_page_stands_in_until_the_retry_swaps_it_out() -> None:
    policy = serving()
    policy.crash_streak = 3  # the next backoff is 0.8 s
    crashed, timer, page = policy.apply(WorkerExited(1, -11))
    assert crashed == WorkerCrashed(1, -11, 0.8)
    assert timer == StartBackoff(0.8, 1)
    assert page == SpawnCrashPage(2, crashed=1, code=-11, retry_in_s=0.8)
    assert (policy.phase, policy.pending, policy.crash_pages) == (Phase.BACKOFF, 2, {2})
    assert policy.apply(WorkerReady(2, 1.0, is_broken=True)) == []  # no reload to report
    assert (policy.phase, policy.live, policy.pending) == (Phase.BACKOFF, 2, None)
    assert policy.apply(BackoffElapsed(1)) == [Spawn(3)]
    assert (policy.phase, policy.live, policy.pending) == (Phase.STARTING, 2, 3)
    [terminate, finished] = policy.apply(WorkerReady(3, 2.0))
    assert terminate == Terminate(2)
    assert isinstance(finished, ReloadFinished)
    assert not finished.is_broken
    assert not finished.is_first
    assert policy.apply(WorkerExited(2, 0)) == []
    assert (policy.phase, policy.live, policy.crash_pages) == (Phase.SERVING, 3, set())


def test_retry_that_crashes_before_ready_replaces_the_stand_in_with_its_crash() -> None:
    policy = serving()
    policy.crash_streak = 3
    policy.apply(WorkerExited(1, 7))
    policy.apply(WorkerReady(2, 1.0, is_broken=True))
    assert policy.apply(BackoffElapsed(1)) == [Spawn(3)]
    # The retry dies at import: no more retries until a save, the crash page shows it.
    assert policy.apply(WorkerExited(3, 3)) == [
        WorkerCrashed(3, 3, None, has_crash_page=True),
        SpawnCrashPage(4, crashed=3, code=3),
    ]
    [terminate, finished] = policy.apply(WorkerReady(4, 2.0, is_broken=True))
    assert terminate == Terminate(2)
    assert isinstance(finished, ReloadFinished)
    assert finished.is_broken


def test_stand_in_still_starting_is_dropped_by_the_retry_or_a_save() -> None:
    policy = serving()
    policy.crash_streak = 3
    policy.apply(WorkerExited(1, 1))
    assert policy.apply(BackoffElapsed(1)) == [Terminate(2), Spawn(3)]
    assert (policy.pending, policy.draining) == (3, {2})
    policy = serving()
    policy.crash_streak = 3
    policy.apply(WorkerExited(1, 1))
    assert policy.apply(FilesChanged(("a.py",), 3.0)) == [Terminate(2), Spawn(3)]
    assert policy.apply(BackoffElapsed(1)) == []  # stale


def test_stand_in_that_dies_is_not_replaced_and_the_timer_still_retries() -> None:
    policy = serving()
    policy.crash_streak = 3
    policy.apply(WorkerExited(1, 1))
    assert policy.apply(WorkerExited(2, -9)) == [WorkerCrashed(2, -9, None)]  # before ready
    assert (policy.phase, policy.pending, policy.crash_pages) == (Phase.BACKOFF, None, set())
    assert policy.apply(BackoffElapsed(1)) == [Spawn(3)]
    policy = serving()
    policy.crash_streak = 3
    policy.apply(WorkerExited(1, 1))
    policy.apply(WorkerReady(2, 1.0, is_broken=True))
    assert policy.apply(WorkerExited(2, -9)) == [WorkerCrashed(2, -9, None)]  # while serving
    assert (policy.phase, policy.live) == (Phase.BACKOFF, None)
    assert policy.apply(BackoffElapsed(1)) == [Spawn(3)]


def test_live_crash_page_that_dies_backs_off_without_another_page() -> None:
    policy = starting_first()
    policy.crash_streak = 5  # a long backoff: a real worker would get a stand-in
    policy.apply(WorkerExited(1, 3))
    policy.apply(WorkerReady(2, 1.0, is_broken=True))
    assert policy.apply(WorkerExited(2, -9)) == [
        WorkerCrashed(2, -9, 3.2),
        StartBackoff(3.2, 1),
    ]


# -- crash pages (#7) -----------------------------------------------------------------------


def test_first_worker_dying_before_ready_serves_a_crash_page_not_a_retry() -> None:
    policy = starting_first()
    assert policy.apply(WorkerExited(1, 3)) == [
        WorkerCrashed(1, 3, None, has_crash_page=True),
        SpawnCrashPage(2, crashed=1, code=3),
    ]
    assert (policy.phase, policy.live, policy.pending) == (Phase.STARTING, None, 2)
    assert policy.crash_streak == 0
    [finished] = policy.apply(WorkerReady(2, 0.5, is_broken=True))
    # The first start: nothing to report as a reload (the supervisor warns instead).
    assert finished == ReloadFinished(2, 500.0, (), is_broken=True, is_first=True)
    assert (policy.phase, policy.live, policy.is_live_broken) == (Phase.SERVING, 2, True)
    # No timer, no retry: only a save brings the app back, swapping the page out.
    assert policy.apply(FilesChanged(("main.py",), 5.0)) == [Spawn(3)]
    [terminate, finished] = policy.apply(WorkerReady(3, 5.25))
    assert terminate == Terminate(2)
    assert finished == ReloadFinished(3, 250.0, ("main.py",), is_broken=False)


def test_signal_before_ready_carries_the_negative_code() -> None:
    policy = starting_first()
    [crashed, page] = policy.apply(WorkerExited(1, -11))
    assert crashed == WorkerCrashed(1, -11, None, has_crash_page=True)
    assert page == SpawnCrashPage(2, crashed=1, code=-11)


def test_save_that_crashes_again_replaces_the_crash_page_with_the_new_crash() -> None:
    policy = starting_first()
    policy.apply(WorkerExited(1, 3))
    policy.apply(WorkerReady(2, 0.5, is_broken=True))
    assert policy.apply(FilesChanged(("main.py",), 5.0)) == [Spawn(3)]
    assert policy.apply(WorkerExited(3, -9)) == [
        WorkerCrashed(3, -9, None, has_crash_page=True),
        SpawnCrashPage(4, crashed=3, code=-9),
    ]
    [terminate, finished] = policy.apply(WorkerReady(4, 5.5, is_broken=True))
    assert terminate == Terminate(2)
    assert finished == ReloadFinished(4, 500.0, ("main.py",), is_broken=True)


def test_crash_before_ready_behind_an_import_error_page_shows_the_crash() -> None:
    policy = starting()
    policy.apply(WorkerReady(2, 1.5, is_broken=True))  # an import error is served
    policy.apply(WorkerExited(1, 0))
    policy.apply(FilesChanged(("a.py",), 3.0))
    assert policy.apply(WorkerExited(3, 3)) == [
        WorkerCrashed(3, 3, None, has_crash_page=True),
        SpawnCrashPage(4, crashed=3, code=3),
    ]


def test_restart_strategy_crash_with_the_old_worker_stopped_serves_a_crash_page() -> None:
    policy = restarting()
    assert policy.apply(WorkerExited(1, 0)) == [Spawn(2)]
    assert policy.apply(WorkerExited(2, 3)) == [
        WorkerCrashed(2, 3, None, has_crash_page=True),
        SpawnCrashPage(3, crashed=2, code=3),
    ]
    [finished] = policy.apply(WorkerReady(3, 2.0, is_broken=True))
    assert finished == ReloadFinished(3, 1000.0, ("a.py",), is_broken=True)


def test_crash_page_that_dies_before_ready_backs_off_to_the_real_code() -> None:
    policy = starting_first()
    policy.apply(WorkerExited(1, 3))
    assert policy.apply(WorkerExited(2, -9)) == [
        WorkerCrashed(2, -9, BACKOFF_FIRST_S),
        StartBackoff(BACKOFF_FIRST_S, 1),
    ]
    assert policy.apply(BackoffElapsed(1)) == [Spawn(3)]


def test_crash_page_behind_an_import_error_page_that_dies_leaves_the_old_page() -> None:
    policy = starting()
    policy.apply(WorkerReady(2, 1.5, is_broken=True))
    policy.apply(FilesChanged(("a.py",), 3.0))
    policy.apply(WorkerExited(3, 3))  # crash page 4 starting, import-error page 2 live
    assert policy.apply(WorkerExited(4, -9)) == [WorkerCrashed(4, -9, None)]
    assert (policy.phase, policy.live) == (Phase.SERVING, 2)


def test_stop_while_a_crash_page_starts_terminates_it() -> None:
    policy = starting_first()
    policy.apply(WorkerExited(1, 3))
    assert policy.apply(StopRequested()) == [Terminate(2)]
    assert policy.apply(WorkerExited(2, 0)) == [Finished()]
    assert policy.crash_pages == set()


def test_a_save_during_the_first_start_is_a_reload() -> None:
    policy = starting_first()
    policy.apply(FilesChanged(("a.py",), 0.5))
    [finished] = policy.apply(WorkerReady(2, 1.0))
    assert isinstance(finished, ReloadFinished)
    assert not finished.is_first


def test_stale_backoff_tokens_are_ignored() -> None:
    policy = backoff()
    assert policy.apply(BackoffElapsed(0)) == []
    assert policy.phase is Phase.BACKOFF
    # A save spawns at once: timer 1 is now stale, in any phase.
    assert policy.apply(FilesChanged(("a.py",), 2.0)) == [Spawn(2)]
    assert policy.apply(BackoffElapsed(1)) == []
    policy.apply(WorkerReady(2, 2.5))
    crashed, timer = policy.apply(WorkerExited(2, 1))
    assert crashed == WorkerCrashed(2, 1, BACKOFF_FIRST_S)
    assert timer == StartBackoff(BACKOFF_FIRST_S, 3)
    assert policy.apply(BackoffElapsed(1)) == []
    assert policy.apply(BackoffElapsed(2)) == []
    assert policy.phase is Phase.BACKOFF
    assert policy.apply(BackoffElapsed(3)) == [Spawn(3)]
    assert policy.apply(BackoffElapsed(3)) == []  # fired twice: STARTING ignores it


def test_files_changed_in_backoff_spawns_now_and_resets_streak() -> None:
    policy = serving()
    actions = policy.apply(WorkerExited(1, 1))
    for _ in range(3):
        timer = actions[1]
        assert isinstance(timer, StartBackoff)
        actions = retry_then_crash(policy, timer.token)
    assert actions == [
        WorkerCrashed(4, 1, 0.8),
        StartBackoff(0.8, 4),
        SpawnCrashPage(5, crashed=4, code=1, retry_in_s=0.8),
    ]
    assert policy.apply(FilesChanged(("a.py",), 9.0)) == [Terminate(5), Spawn(6)]
    assert policy.crash_streak == 0
    policy.apply(WorkerReady(6, 9.5))
    assert policy.apply(WorkerExited(6, 1)) == [
        WorkerCrashed(6, 1, BACKOFF_FIRST_S),
        StartBackoff(BACKOFF_FIRST_S, 6),
    ]


def test_ready_after_backoff_swaps_in() -> None:
    policy = backoff()
    [spawn] = policy.apply(BackoffElapsed(1))
    assert spawn == Spawn(2)
    [finished] = policy.apply(WorkerReady(2, 4.0))
    assert isinstance(finished, ReloadFinished)
    assert finished.generation == 2
    assert (policy.phase, policy.live) == (Phase.SERVING, 2)


def test_pending_crash_with_live_worker_keeps_serving() -> None:
    policy = starting()
    assert policy.apply(WorkerExited(2, 1)) == [WorkerCrashed(2, 1, None)]
    assert (policy.phase, policy.live, policy.pending) == (Phase.SERVING, 1, None)
    assert policy.crash_streak == 0
    # The next save tries again; the old worker still serves meanwhile.
    assert policy.apply(FilesChanged(("b.py",), 5.0)) == [Spawn(3)]
    [terminate, finished] = policy.apply(WorkerReady(3, 5.5))
    assert terminate == Terminate(1)
    assert isinstance(finished, ReloadFinished)
    assert finished.duration_ms == pytest.approx(500.0)
    assert "b.py" in finished.paths


def test_live_crash_while_starting_waits_for_the_pending_one() -> None:
    policy = starting()
    assert policy.apply(WorkerExited(1, -9)) == [WorkerCrashed(1, -9, None)]
    assert (policy.phase, policy.live, policy.pending) == (Phase.STARTING, None, 2)
    assert policy.apply(WorkerReady(2, 1.5)) == [
        ReloadFinished(2, 500.0, ("a.py",), is_broken=False)
    ]
    assert (policy.phase, policy.live) == (Phase.SERVING, 2)


def test_both_crash_while_starting_serves_a_crash_page() -> None:
    policy = starting()
    policy.apply(WorkerExited(1, -9))
    assert policy.apply(WorkerExited(2, 1)) == [
        WorkerCrashed(2, 1, None, has_crash_page=True),
        SpawnCrashPage(3, crashed=2, code=1),
    ]
    assert (policy.phase, policy.pending) == (Phase.STARTING, 3)


def test_draining_exit_while_serving_is_forgotten() -> None:
    policy = starting()
    policy.apply(WorkerReady(2, 1.5))
    assert policy.apply(WorkerExited(1, -15)) == []
    assert (policy.phase, policy.live, policy.draining) == (Phase.SERVING, 2, set())
    assert policy.apply(WorkerExited(99, 0)) == []


# -- stopping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "actions", "after"),
    [
        (starting_first, [Terminate(1)], Phase.STOPPING),
        (serving, [Terminate(1)], Phase.STOPPING),
        (starting, [Terminate(1), Terminate(2)], Phase.STOPPING),
        (restarting, [], Phase.STOPPING),
        (backoff, [Finished()], Phase.DONE),
        (backoff_with_draining, [], Phase.STOPPING),
        (stopping, [Kill(1)], Phase.STOPPING),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_stop_requested_from_every_phase(
    build: Callable[[], ReloadPolicy], actions: list[Action], after: Phase
) -> None:
    policy = build()
    assert policy.apply(StopRequested()) == actions
    assert policy.phase is after
    assert (policy.live, policy.pending) == (None, None)


def test_second_stop_kills_every_draining_generation_and_last_exit_finishes() -> None:
    policy = starting()
    policy.apply(FilesChanged(("b.py",), 1.1))  # 2 superseded by 3
    assert policy.apply(StopRequested()) == [Terminate(1), Terminate(3)]
    assert policy.draining == {1, 2, 3}
    assert policy.apply(StopRequested()) == [Kill(1), Kill(2), Kill(3)]
    assert policy.apply(StopRequested()) == [Kill(1), Kill(2), Kill(3)]
    assert policy.apply(WorkerReady(3, 2.0)) == []
    assert policy.apply(FilesChanged(("c.py",), 2.0)) == []
    assert policy.apply(WorkerExited(2, -9)) == []
    assert policy.apply(StopRequested()) == [Kill(1), Kill(3)]
    assert policy.apply(WorkerExited(1, -9)) == []
    assert policy.phase is Phase.STOPPING
    assert policy.apply(WorkerExited(3, -9)) == [Finished()]
    assert (policy.phase, policy.draining) == (Phase.DONE, set())


@pytest.mark.parametrize(
    "event",
    [
        FilesChanged(("a.py",), 1.0),
        WorkerReady(1, 1.0),
        WorkerExited(1, 0),
        StopRequested(),
        BackoffElapsed(1),
    ],
    ids=lambda event: type(event).__name__,
)
def test_done_rejects_every_input_naming_phase_and_input(event: Input) -> None:
    policy = done()
    with pytest.raises(PolicyError) as caught:
        policy.apply(event)
    assert "DONE" in str(caught.value)
    assert type(event).__name__ in str(caught.value)
    assert policy.phase is Phase.DONE
