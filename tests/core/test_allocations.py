"""An evaluation allocates no Python object beyond its result."""

import sys

import flagstaff

CONFIG = b"""{
  "p": {"s": "c2FsdA=="},
  "s": [{"n": "Free plan", "r": [{"a": "plan", "c": 0, "l": ["free"]}]}],
  "f": {
    "onboarding": {
      "t": 1,
      "r": [{"c": [{"s": {"s": 0, "c": 0}}],
             "p": [{"p": 50, "v": {"s": "a"}, "i": "1"},
                   {"p": 50, "v": {"s": "b"}, "i": "2"}]}],
      "v": {"s": "default"}, "i": "0"
    },
    "hashed": {
      "t": 0,
      "r": [{"c": [{"u": {"a": "Email", "c": 16, "l": ["00"]}}],
             "s": {"v": {"b": true}, "i": "t"}}],
      "v": {"b": false}, "i": "f"
    }
  }
}"""


def allocated_blocks_during(call, rounds=2000):
    call()  # warm up caches (UTF-8 forms of the users' strings)
    before = sys.getallocatedblocks()
    for _ in range(rounds):
        call()
    return sys.getallocatedblocks() - before


def test_get_value_allocates_nothing_per_call():
    config = flagstaff.Config.from_json(CONFIG)
    user = flagstaff.User("user-1", email="a@example.com", custom={"plan": "free"})

    def evaluate():
        config.get_value("onboarding", "default", user)
        config.get_value("hashed", False, user)

    # A leak or a per-call object would add blocks in proportion to rounds.
    assert allocated_blocks_during(evaluate) < 10


def test_get_all_values_allocates_only_its_result():
    config = flagstaff.Config.from_json(CONFIG)
    user = flagstaff.User("user-2", custom={"plan": "free"})
    results = []

    def evaluate():
        results.append(config.get_all_values(user))

    grown = allocated_blocks_during(evaluate, rounds=500)
    assert grown <= 500 * 2 + 10   # one dict (and its table) per call
