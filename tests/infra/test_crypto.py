"""Stored secrets are encrypted with a rotatable master key; tokens are random and hashed."""

from __future__ import annotations

import pytest

from bridge.infra import crypto


def test_encrypted_value_does_not_contain_plaintext():
    """Ciphertext never contains the plaintext and decrypts back to it."""
    box = crypto.SecretBox(["m" * 40])
    ciphertext = box.encrypt("zw_live_plaintext_key")
    assert "zw_live_plaintext_key" not in ciphertext
    assert box.decrypt(ciphertext) == "zw_live_plaintext_key"


def test_old_master_key_still_decrypts_and_rotation_rewrites():
    """After a master-key change, old ciphertext decrypts until re-encrypted under the new key."""
    old_box = crypto.SecretBox(["old" * 15])
    ciphertext = old_box.encrypt("the-key")
    new_box = crypto.SecretBox(["new" * 15, "old" * 15])
    assert new_box.decrypt(ciphertext) == "the-key"
    rotated = new_box.rotate(ciphertext)
    assert crypto.SecretBox(["new" * 15]).decrypt(rotated) == "the-key"


def test_wrong_master_key_raises_decryption_error():
    """A ciphertext from another master key is refused with a clear error, not garbage."""
    ciphertext = crypto.SecretBox(["a" * 40]).encrypt("k")
    with pytest.raises(crypto.DecryptionError):
        crypto.SecretBox(["b" * 40]).decrypt(ciphertext)


def test_tokens_are_recognisable_unique_and_well_formed():
    """Tokens carry the zwb_ prefix, 256 random bits, and pass the format check."""
    tokens = {crypto.new_connection_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("zwb_") and crypto.looks_like_token(t) for t in tokens)
    assert not crypto.looks_like_token("zwb_short")
    assert not crypto.looks_like_token("Bearer zwb_" + "a" * 43)
    assert not crypto.looks_like_token("zwb_" + "é" * 43)  # letters, but not base64's
    assert not crypto.looks_like_token("zwb_" + "a" * 43 + "\n")
    assert not crypto.looks_like_token("zwb_" + "a" * 65)
    assert crypto.looks_like_token("zwb_" + "a-_9" * 10)


def test_token_hash_is_stable_and_not_the_token():
    """The stored hash is deterministic and reveals nothing of the token."""
    token = crypto.new_connection_token()
    assert crypto.hash_token(token) == crypto.hash_token(token)
    assert token[4:] not in crypto.hash_token(token)


def test_secret_box_repr_hides_keys():
    """repr() of the box never shows key material."""
    assert "m" * 40 not in repr(crypto.SecretBox(["m" * 40]))
