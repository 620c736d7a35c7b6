from alstream.service.limits import RateLimiter


def test_each_key_has_its_own_bucket_and_refills_at_the_rate():
    bucket = RateLimiter(rate_per_s=10.0, burst=5)
    assert [bucket.wait("a", now=0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.wait("a", now=0.0) > 0
    assert bucket.wait("b", now=0.0) == 0.0  # another token is not slowed by the first
    assert bucket.wait("a", now=0.1) == 0.0  # one more after 1/rate seconds
    assert abs(bucket.wait("a", now=0.1) - 0.1) < 1e-9
