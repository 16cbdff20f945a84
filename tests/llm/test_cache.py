"""The SQLite response cache: persistence, keys, bad files."""

import pytest

from recgen.errors import ConfigError
from recgen.llm.cache import ResponseCache, cache_key


def test_cache_persists_across_instances(tmp_path):
    path = tmp_path / "c.sqlite"
    c = ResponseCache(path)
    k = cache_key({"prompt": "hi", "params": {"temperature": 0.0}})
    assert c.get(k) is None
    c.put(k, {"text": "hello"})
    c.close()
    c2 = ResponseCache(path)
    assert c2.get(k) == {"text": "hello"} and len(c2) == 1 and c2.hits == 1
    c2.close()


def test_cache_key_depends_on_every_part():
    base = {"identity": {"model_sha256": "a"}, "kind": "chat", "payload": "p", "params": {"temperature": 0.0}}
    keys = {cache_key(base)}
    for change in (
        {"identity": {"model_sha256": "b"}},
        {"kind": "complete"},
        {"payload": "q"},
        {"params": {"temperature": 0.7}},
    ):
        keys.add(cache_key({**base, **change}))
    assert len(keys) == 5
    assert cache_key(dict(reversed(list(base.items())))) == cache_key(base)  # order-free


def test_corrupt_cache_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="cannot open the LLM cache"):
        ResponseCache(bad)
