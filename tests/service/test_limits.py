from alstream.service.limits import RateLimiter


def test_each_key_has_its_own_bucket_and_refills_at_the_rate():
    bucket = RateLimiter(rate_per_s=10.0, burst=5)
    assert [bucket.wait("a", now=0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.wait("a", now=0.0) > 0
    assert bucket.wait("b", now=0.0) == 0.0  # another token is not slowed by the first
    assert bucket.wait("a", now=0.1) == 0.0  # one more after 1/rate seconds
    assert abs(bucket.wait("a", now=0.1) - 0.1) < 1e-9


def test_buckets_of_keys_that_went_away_are_forgotten():
    bucket = RateLimiter(rate_per_s=10.0, burst=5)
    for i in range(10_000):
        assert bucket.wait(f"token-{i}", now=1.0 + i / 1e6) == 0.0
    assert len(bucket) == 10_000
    for _ in range(5):
        bucket.wait("busy", now=2.0)  # still throttled: kept
    assert bucket.wait("busy", now=2.0) > 0
    assert len(bucket) == 1  # the others' buckets refilled by then: the same as none
    assert bucket.wait("busy", now=2.0) > 0
