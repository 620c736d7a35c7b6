"""An honest accuracy estimate on the stream.

Uncertainty sampling asks about the hardest samples, so the model's accuracy on what people
label says little. A share of the queue is drawn uniformly at random instead; the model's
guess for those, made when they were served, is compared with the label people give.

>>> quality = StreamAccuracy()
>>> quality.served("a", version=1, predicted="cat")
>>> quality.labeled("a", "cat", n_labels=10)  # the guess was right
True
>>> quality.estimate()
(1.0, 1)
"""

from __future__ import annotations

from collections import OrderedDict, deque


class StreamAccuracy:
    """Running accuracy over the latest ``window`` randomly drawn, labeled samples, and per model
    version for the newest ``max_versions``; one writer thread."""

    def __init__(self, window: int = 200, max_guesses: int = 100_000, max_versions: int = 100) -> None:
        self.max_guesses = max_guesses  # random draws served and not labeled yet: the newest are kept
        self.max_versions = max_versions  # versions with a tally of their own: the newest are kept
        self.window = window
        self._guesses: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._recent: deque[bool] = deque(maxlen=window)
        self._by_version: dict[int, list[int]] = {}

    def served(self, sample_id: str, version: int, predicted: str) -> None:
        """Remember the guess of model ``version`` for a randomly drawn sample."""
        self._guesses.setdefault(sample_id, (version, predicted))
        while len(self._guesses) > self.max_guesses:  # served and never labeled: forgotten
            self._guesses.popitem(last=False)

    def labeled(self, sample_id: str, label: str | None, n_labels: int) -> bool | None:
        """A person labeled ``sample_id``: score the guess if it was a random draw (returns whether
        the guess was right; None when it was not a random draw)."""
        guess = self._guesses.pop(sample_id, None)
        if guess is None or label is None:
            return None
        version, predicted = guess
        correct = predicted == label
        self.scored(version, correct)
        return correct

    def scored(self, version: int, correct: bool) -> None:
        """One guess of model ``version`` scored."""
        self._recent.append(correct)
        tally = self._by_version.get(version)
        if tally is None:
            full = len(self._by_version) >= self.max_versions
            if full and self._by_version and version < min(self._by_version):
                return  # a guess of a version older than every one kept: in the window only
            tally = self._by_version[version] = [0, 0]
            while len(self._by_version) > self.max_versions:  # a new version: the oldest goes
                del self._by_version[min(self._by_version)]
        tally[0] += int(correct)
        tally[1] += 1

    def restore(self, tallies: dict[int, tuple[int, int]], recent: list[bool]) -> None:
        """Resume from what was scored before (a new trainer, from the store): per version (right,
        scored), and the newest outcomes, oldest first (the window keeps the last ``window``)."""
        newest = sorted(tallies.items())[-self.max_versions :] if self.max_versions else []
        self._by_version = {version: [right, n] for version, (right, n) in newest}
        self._recent.clear()
        self._recent.extend(recent)

    def estimate(self) -> tuple[float | None, int]:
        """(accuracy over the window, how many samples it rests on)."""
        n = len(self._recent)
        return (sum(self._recent) / n if n else None), n

    def by_version(self) -> dict[int, tuple[float, int]]:
        """Per model version: (accuracy on its random draws, how many)."""
        return {v: (c / n, n) for v, (c, n) in self._by_version.items() if n}
