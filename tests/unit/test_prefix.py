"""Prefix-aware replica choice, the pure part: chained block hashes and the choice rule."""

from __future__ import annotations

from cache.prefix import block_hashes, choose, flatten, longest_prefix


def test_block_hashes_are_chained_so_a_block_stands_for_its_whole_prefix() -> None:
    shared = list(range(64))
    one, two = block_hashes(shared + [1] * 32, 16, 100), block_hashes(shared + [2] * 32, 16, 100)
    assert one[:4] == two[:4] and one[4] != two[4] and len(one) == 6
    moved = block_hashes([99] + shared[1:] + [1] * 32, 16, 100)
    assert not set(moved) & set(one)  # a change in block 0 changes every later hash
    assert len(block_hashes(list(range(10_000)), 16, 8)) == 8 and block_hashes(list(range(15)), 16, 8) == []


def test_the_deepest_known_block_names_the_holder() -> None:
    assert longest_prefix([b"2", b"1", None, b"0"]) == (2, "1")
    assert longest_prefix([None, b"1"]) == (0, None)


def test_the_holder_wins_unless_it_is_much_busier_than_the_rest() -> None:
    assert choose(2, [0, 0, 0, 0], 1.3) == 2
    assert choose(2, [3, 3, 4, 3], 1.3) == 2  # 5 <= 1.3 * 4.25
    assert choose(2, [0, 1, 9, 1], 1.3) == 0  # overloaded: the least busy instead
    assert {choose(None, [0, 0, 0], 1.3, start) for start in range(3)} == {0, 1, 2}  # new prefixes spread


def test_flattening_keeps_roles_and_order() -> None:
    assert flatten({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text", "text": "U"}]}]}) \
        == "<|system|>\nS\n<|user|>\nU\n"
