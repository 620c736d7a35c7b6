from alstream import auth


def test_tokens_are_unique_and_keyed():
    tokens = {auth.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert len({auth.token_key(t) for t in tokens}) > 990  # 32-bit keys: a collision is rare, never a leak
    token = tokens.pop()
    assert token.startswith("als_") and len(token) >= 40


def test_malformed_tokens_have_no_key():
    for bad in ["", "als_", "als_short_x", "bearer als_12345678_x", "als_12345678_", "xyz_12345678_secret"]:
        assert auth.token_key(bad) is None, bad


def test_roles():
    assert [r for r in auth.ROLES if auth.allows(r, "send")] == ["producer", "admin"]
    assert [r for r in auth.ROLES if auth.allows(r, "label")] == ["annotator", "admin"]
    assert [r for r in auth.ROLES if auth.allows(r, "admin")] == ["admin"]
    assert not auth.allows("nobody", "read")
