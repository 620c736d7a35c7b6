"""The random items' guesses and outcomes (``audits``) and the trainer's report (``trainer_stats``),
on SQLite and PostgreSQL: a sample keeps its first guess, a guess is scored once, the tallies and
the newest outcomes come back as scored, and the open and the scored guesses stay bounded."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from alstream.service.engine import RESUMED_AUDITS
from alstream.store import LabelRow, Store
from alstream.store.audits import MAX_SCORED

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_sample_keeps_its_first_guess_and_is_scored_once(store: Store) -> None:
    audits = store.audits
    audits.served([("a", 1, "cat"), ("b", 1, "dog")], T0)
    audits.served([("a", 2, "dog"), ("c", 2, "cat")], T0)  # a: served again, its first guess stays
    assert sorted(audits.open(["a", "b", "c", "nobody"])) == [
        ("a", 1, "cat"),
        ("b", 1, "dog"),
        ("c", 2, "cat"),
    ]
    audits.scored([("a", 10, True), ("c", 11, False)])
    audits.scored([("a", 12, False)])  # scored already: the first label counts
    assert audits.open(["a", "b", "c"]) == [("b", 1, "dog")]
    assert audits.tallies() == {1: (1, 1), 2: (0, 1)}
    assert audits.recent(5) == [(1, True), (2, False)]  # in the labels' order
    assert audits.recent(1) == [(2, False)]
    assert audits.counts() == {"open": 1, "scored": 2}


def test_the_labels_come_with_the_open_guesses_they_name_and_a_guess_takes_its_first_label(
    store: Store,
) -> None:
    audits = store.audits
    audits.served([("a", 1, "cat"), ("b", 1, "dog"), ("c", 2, "cat")], T0)
    audits.scored([("c", 1, True)])  # scored before: not open
    store.add_labels([LabelRow(s, "cat", "ann", False, "t:0", i) for i, s in enumerate("xaacb")])
    events, guesses = audits.labels_after(0)
    assert events == store.labels_after(0) and [e[1] for e in events] == list("xaacb")
    assert sorted(guesses) == [("a", 1, "cat"), ("b", 1, "dog")]  # a once, though labeled twice
    assert audits.labels_after(events[2][0], limit=1) == ([events[3]], [])
    first, second = events[1][0], events[2][0]
    scores = [("a", second, False), ("a", first, True)]  # written before the read, in its transaction
    assert audits.labels_after(0, scores=scores) == (events, [("b", 1, "dog")])
    audits.scored([("b", events[4][0], False)])
    assert audits.recent(5) == [(2, True), (1, True), (1, False)]  # a: its first label's outcome
    assert audits.labels_after(0)[1] == []


def test_the_newest_open_guesses_are_kept_and_the_scored_ones_stay(store: Store) -> None:
    audits = store.audits
    audits.served([(f"s{i}", 1, "x") for i in range(10)], T0)
    audits.scored([("s0", 1, True)])
    for i in range(10, 20):
        audits.served([(f"s{i}", 1, "x")], T0 + timedelta(seconds=i))
    assert audits.prune(keep=5) == 14  # s1..s9 and s10..s14
    assert sorted(s for s, _, _ in audits.open([f"s{i}" for i in range(20)])) == [
        f"s{i}" for i in range(15, 20)
    ]
    assert audits.tallies() == {1: (1, 1)}
    assert audits.prune(keep=5) == 0


def test_the_newest_scored_guesses_are_kept_and_the_older_folded_into_the_tallies(store: Store) -> None:
    """Beyond the bound, scored rows are counted per version and deleted: the rows stay at the bound,
    the tallies stay exact and the newest outcomes come back as before."""
    assert MAX_SCORED >= RESUMED_AUDITS  # a new trainer reads back that many outcomes
    audits, outcomes = store.audits, []
    audits.fold(keep=10)  # nothing scored: nothing to fold
    for start in range(0, 100, 25):
        ids = range(start, start + 25)
        audits.served([(f"s{i}", i % 3 + 1, "x") for i in ids] + [(f"open{start}", 1, "x")], T0)
        outcomes += [(i % 3 + 1, i % 2 == 0 or i % 5 == 0) for i in ids]
        audits.scored([(f"s{i}", i + 1, outcomes[i][1]) for i in ids])  # label i + 1 scores s{i}
        before, newest = audits.tallies(), audits.recent(10)
        assert audits.fold(keep=10) == (15 if start == 0 else 25)  # all scored rows but the newest 10
        assert audits.counts() == {"open": start // 25 + 1, "scored": 10}
        assert audits.tallies() == before == counted(outcomes)
        assert audits.recent(10) == newest == outcomes[-10:]
        assert audits.recent(3) == outcomes[-3:]
    assert audits.fold(keep=10) == 0 and audits.counts()["scored"] == 10


def counted(outcomes: list[tuple[int, bool]]) -> dict[int, tuple[int, int]]:
    """Per version: (outcomes right, outcomes)."""
    tallies: dict[int, tuple[int, int]] = {}
    for version, ok in outcomes:
        right, n = tallies.get(version, (0, 0))
        tallies[version] = (right + ok, n + 1)
    return tallies


def test_the_trainer_report_is_one_row_replaced(store: Store) -> None:
    assert store.trainer_stats.last() is None
    store.trainer_stats.report("t1", {"stream_accuracy": 0.5}, T0)
    store.trainer_stats.report(
        "t2", {"stream_accuracy": 0.75, "drift": {"detected": 1}}, T0 + timedelta(seconds=1)
    )
    last = store.trainer_stats.last()
    assert last is not None and last.trainer == "t2" and last.reported_at == T0 + timedelta(seconds=1)
    assert last.stats == {"stream_accuracy": 0.75, "drift": {"detected": 1}}


def test_sqlite_audit_writes_queue_behind_the_leases_of_their_process(tmp_path) -> None:
    """SQLite: a replica's audit writes and its leases take turns in the process (no busy_timeout to
    poll the file's lock: it would put hundreds of ms of sleeps into a lease's tail)."""
    store = Store(f"sqlite:///{tmp_path}/store.db", busy_timeout_ms=0, attempts=1)
    store.create()
    names = [f"c{i}" for i in range(400)]
    store.candidates.publish(0, 1, names[:200], [0.5] * 200, picks=names[200:], pick_scores=[0.5] * 200)
    errors: list[BaseException] = []

    def replica_thread(k: int) -> None:
        try:
            for turn in range(20):
                taken = store.candidates.lease(f"ann{k}-{turn}", None, 5, 600.0, random_share=0.5)
                store.audits.served([(c.id, 1, "x") for c in taken if c.reason == "random"])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=replica_thread, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert errors == []


def test_the_labels_read_probes_each_labels_guess_whatever_the_open_guesses(store: Store) -> None:
    """Its plan looks a label's guess up by the sample's key, the table of open guesses never scanned
    (PostgreSQL hashed all 20,000 for a plain LEFT JOIN of 100 labels: 4.1 ms instead of 1.3)."""
    store.audits.served([(f"g{i}", 1, "x") for i in range(20_000)], T0)
    store.add_labels([LabelRow(f"g{i}", "x", "ann", False, "t:0", i) for i in range(0, 20_000, 200)])
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
        audits = store.audits
        queries = [(audits._labels_after, {})]
        if audits._scoring_read is not None:
            queries.append((audits._scoring_read, {"sids": ["g0"], "lids": [1], "oks": [True]}))
        for query, params in queries:
            compiled = query.compile(store.engine)
            explain = "EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
            bound = {**compiled.params, "after_label_id": 0, **params}
            if store.dialect == "sqlite":
                bound = tuple(bound[name] for name in compiled.positiontup)
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(explain + str(compiled), bound))
            assert "Seq Scan on audits" not in plan and "SCAN audits" not in plan, plan
            assert "audits_pkey" in plan or "sqlite_autoindex_audits" in plan, plan


def test_the_tallies_keep_the_newest_versions_only(store: Store) -> None:
    """A version's folded counts are forgotten once ``versions`` newer ones have some."""
    audits = store.audits
    for version in range(1, 8):
        audits.served([(f"v{version}-{i}", version, "x") for i in range(3)], T0)
        audits.scored([(f"v{version}-{i}", version * 10 + i, i == 0) for i in range(3)])
        audits.fold(keep=0, versions=3)
        assert sorted(audits.tallies()) == list(range(max(1, version - 2), version + 1))
    assert audits.tallies() == {5: (1, 3), 6: (1, 3), 7: (1, 3)}
    assert audits.counts()["scored"] == 0
