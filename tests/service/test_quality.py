"""The honest accuracy estimate: scored on random draws only, and its memory bounded."""

from alstream.service.quality import StreamAccuracy


def test_only_random_draws_are_scored_and_say_whether_the_guess_was_right():
    quality = StreamAccuracy()
    quality.served("a", version=1, predicted="cat")
    assert quality.labeled("a", "dog", n_labels=1) is False
    assert quality.labeled("b", "dog", n_labels=2) is None  # never served at random
    assert quality.estimate() == (0.0, 1)


def test_random_draws_nobody_labels_are_forgotten_past_the_bound():
    quality = StreamAccuracy(max_guesses=1_000)
    for i in range(50_000):  # served, never labeled (a bot asking the queue, say)
        quality.served(f"s{i}", version=1, predicted="cat")
    assert len(quality._guesses) == 1_000
    assert quality.labeled("s49999", "cat", n_labels=1) is True  # the newest are kept
    assert quality.labeled("s0", "cat", n_labels=1) is None


def test_per_version_tallies_keep_the_newest_versions_only():
    """Months of retrains make thousands of versions: /stats shows the newest ``max_versions``."""
    quality = StreamAccuracy(max_versions=5)
    for version in range(1, 1_001):
        quality.served(f"s{version}", version=version, predicted="cat")
        quality.labeled(f"s{version}", "cat" if version % 2 else "dog", n_labels=version)
    assert sorted(quality.by_version()) == [996, 997, 998, 999, 1000]
    assert quality.by_version()[999] == (1.0, 1) and quality.by_version()[1000] == (0.0, 1)
    quality.scored(3, True)  # a late label for a version long gone: in the window, no tally back
    assert sorted(quality.by_version()) == [996, 997, 998, 999, 1000]
    assert quality.estimate()[1] == 200  # the window is full
    quality.restore({v: (v % 2, 1) for v in range(1, 1_001)}, [True])
    assert sorted(quality.by_version()) == [996, 997, 998, 999, 1000]
